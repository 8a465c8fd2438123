"""Tiny ImageNet: SNIP on the standard ResNet104."""

from sbp_tf.config import experiment


def get_config():
  return experiment("tiny_imagenet", "resnet104", method="sbp",
                    sparsity=0.9, stable=False, batch_norm=True)
