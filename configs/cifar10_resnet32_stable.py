"""Table 1: SBP-SR (Stable ResNet32 + rescaling), CIFAR10."""

from sbp_tf.config import experiment


def get_config():
  return experiment("cifar10", "resnet32", method="sbp", sparsity=0.9,
                    rescale=True, stable=True)
