"""Tiny ImageNet: SBP-SR on the Stable ResNet32.

SBP-SR is SBP on the Stable ResNet without the rescaling trick;
--config.prune.rescale=True is the labelled ablation.
"""

from sbp_tf.config import experiment


def get_config():
  return experiment("tiny_imagenet", "resnet32", method="sbp",
                    sparsity=0.9, stable=True, batch_norm=True)
