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


def sparsity_events(workdir):
  """``{tag: [(step, value)]}`` of the TensorBoard sparsity scalars."""
  import glob  # pylint: disable=g-import-not-at-top
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(str(workdir / "tensorboard" / "sparsity" /
                                   "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out.setdefault(v.tag, []).append(
            (event.step, float(tf.make_ndarray(v.tensor))))
  return out
