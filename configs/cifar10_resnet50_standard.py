"""Table 1 baseline: SNIP (= SBP) on the standard ResNet50, CIFAR10."""

from sbp_tf.config import experiment


def get_config():
  return experiment("cifar10", "resnet50", method="sbp", sparsity=0.9,
                    stable=False, batch_norm=True)
