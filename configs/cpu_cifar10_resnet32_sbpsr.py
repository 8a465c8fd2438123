"""CPU scale: SBP-SR on a quarter-width Stable ResNet-32, offline CIFAR-10.

10,000 training / 2,000 test images, 4 epochs, 90% sparsity (minutes on 2
cores). The offline CIFAR-10 copy is JPEG (lossy): compare methods run on it,
not against published absolute accuracies.

SBP-SR is SBP on the Stable ResNet without the rescaling trick;
--config.prune.rescale=True is the labelled ablation.
"""

from sbp_tf.config import experiment


def get_config():
  c = experiment("cifar10", "resnet32", method="sbp", sparsity=0.9,
                 stable=True, batch_norm=True, width_multiplier=0.25)
  c.dataset.limit_train = 10000
  c.dataset.limit_test = 2000
  c.train.epochs = 4
  c.train.verbose = 2
  return c
