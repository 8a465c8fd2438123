"""Tiny ImageNet: SBP-SR on the Stable ResNet32."""

from sbp_tf.config import experiment


def get_config():
  return experiment("tiny_imagenet", "resnet32", method="sbp",
                    sparsity=0.9, rescale=True, stable=True)
