"""Table 1 baseline: SNIP (= SBP) on the standard ResNet32, CIFAR100."""

from sbp_tf.config import experiment


def get_config():
  return experiment("cifar100", "resnet32", method="sbp", sparsity=0.9,
                    stable=False, batch_norm=True)
