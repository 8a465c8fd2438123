"""The tiny experiment config shared by the experiment and workdir tests."""

from sbp_tf import config as sbp_config


def tiny_config(**train):
  """A 3-layer MLP on 512 Fashion-MNIST images, 2 epochs, no TFLite export."""
  c = sbp_config.experiment("fashion_mnist", "ffnn", method="sbp",
                            sparsity=0.8, depth=3, width=32)
  c.dataset.limit_train, c.dataset.limit_test = 512, 256
  c.train.update(dict(epochs=2, batch_size=64, lr=0.05, verbose=0))
  c.train.update(train)
  c.export_tflite = False
  return c
