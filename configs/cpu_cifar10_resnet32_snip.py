"""CPU scale: SNIP on a quarter-width standard ResNet-32, offline CIFAR-10.

The baseline of cpu_cifar10_resnet32_sbpsr.py (same data and schedule).
"""

from sbp_tf.config import experiment


def get_config():
  c = experiment("cifar10", "resnet32", method="snip", sparsity=0.9,
                 stable=False, batch_norm=True, width_multiplier=0.25)
  c.dataset.limit_train = 10000
  c.dataset.limit_test = 2000
  c.train.epochs = 4
  c.train.verbose = 2
  return c
