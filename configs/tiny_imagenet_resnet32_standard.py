"""Tiny ImageNet: SNIP on the standard ResNet32."""

from sbp_tf.config import experiment


def get_config():
  return experiment("tiny_imagenet", "resnet32", method="sbp",
                    sparsity=0.9, stable=False, batch_norm=True)
