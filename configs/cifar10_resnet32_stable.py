"""Table 1: SBP-SR (SBP on the Stable ResNet32, no rescaling), CIFAR10.

Batch norm on (the zoo default); --config.model.options.batch_norm=False
for the BN-free network, --config.prune.rescale=True for the rescaling
ablation (not part of SBP-SR).
"""

from sbp_tf.config import experiment


def get_config():
  return experiment("cifar10", "resnet32", method="sbp", sparsity=0.9, stable=True, batch_norm=True)
