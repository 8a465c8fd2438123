"""Tiny ImageNet: SBP-SR on the Stable ResNet104.

SBP-SR is SBP on the Stable ResNet without the rescaling trick;
--config.prune.rescale=True is the labelled ablation.
"""

from sbp_tf.config import experiment


def get_config():
  return experiment("tiny_imagenet", "resnet104", method="sbp",
                    sparsity=0.9, stable=True, batch_norm=True)
