"""Tiny ImageNet: SBP-SR on the Stable ResNet50."""

from sbp_tf.config import experiment


def get_config():
  return experiment("tiny_imagenet", "resnet50", method="sbp",
                    sparsity=0.9, rescale=True, stable=True)
