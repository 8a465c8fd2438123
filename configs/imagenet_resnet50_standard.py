"""ImageNet: SNIP on the standard ResNet-50 (ImageNet stem)."""

from sbp_tf.config import experiment


def get_config():
  return experiment("imagenet2012", "resnet50_imagenet", method="sbp",
                    sparsity=0.9, stable=False, batch_norm=True)
