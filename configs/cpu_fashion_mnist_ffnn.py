"""CPU scale: SBP on a 4-layer fully connected net, Fashion-MNIST (about a minute)."""

from sbp_tf.config import experiment


def get_config():
  c = experiment("fashion_mnist", "ffnn", method="sbp", sparsity=0.9,
                 rescale=True, init="eoc", depth=4, width=256)
  c.dataset.limit_train = 20000
  c.train.epochs = 3
  c.train.lr = 0.05
  c.train.verbose = 2
  return c
