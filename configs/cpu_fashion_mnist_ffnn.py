"""CPU scale: SBP + rescaling on a 4-layer MLP, Fashion-MNIST (under a minute).

20,000 training images, 4 epochs, 90% sparsity; reads the offline copy.
"""

from sbp_tf.config import experiment


def get_config():
  c = experiment("fashion_mnist", "ffnn", method="sbp", sparsity=0.9,
                 rescale=True, init="eoc", depth=4, width=256)
  c.dataset.limit_train = 20000
  c.train.epochs = 4
  c.train.lr = 0.05
  c.train.verbose = 2
  return c
