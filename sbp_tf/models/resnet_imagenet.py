"""Bottleneck ResNet-50 for ImageNet (224x224), standard or Stable ResNet.

Stem conv7x7/2 (64) -> [BN] -> phi -> maxpool3x3/2, then stages of
[3, 4, 6, 3] bottlenecks (1x1 w -> 3x3 w -> 1x1 4w, stride on the 3x3 as in
ResNet v1.5) with w = 64/128/256/512, 1x1 projection shortcut at each stage's
first block, ``out = phi(shortcut + s * F(x))`` with ``s = 1/sqrt(16)`` when
stable, global average pooling, dense head.

Usage::

    model = models.build("resnet50_imagenet", 1000, (224, 224, 3), stable=True)
"""

from sbp_tf.models import _common
from sbp_tf.models.registry import zoo
from sbp_tf.models.resnet import residual

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
EXPANSION = 4


@zoo("resnet50_imagenet")
def resnet50_imagenet(kit, num_classes, input_shape, *, stable=False,
                      batch_norm=True, activation="relu", init="eoc",
                      sigma_b: float = None, width_multiplier=1.0, seed=None):
  """ResNet-50: ``y_l = phi(y_{l-1} + F(y_{l-1}) / sqrt(16))`` if stable.

  25,557,032 parameters for 1000 classes with BN (BN moving stats excluded),
  as torchvision's resnet50; Keras also counts the 53,120 moving statistics.
  """
  _common.check_image_shape(input_shape, "resnet50_imagenet", "(224, 224, 3)")
  activation = _common.check_activation(activation)
  inits = kit.inits(init, activation, sigma_b, seed)
  use_bias = not batch_norm
  num_blocks = sum(n for _, n in STAGES) if stable else 1

  def conv_bn(h, filters, size, prefix, i, stride=1):
    """``<prefix>_conv<i>`` -> [``<prefix>_bn<i>``]."""
    h = inits.conv(filters, size, f"{prefix}_conv{i}", strides=stride,
                   use_bias=use_bias)(h)
    return kit.bn(h, f"{prefix}_bn{i}", batch_norm)

  inputs = kit.Input(input_shape, name="input")
  stem = _common.scaled(64, width_multiplier)
  x = inits.conv(stem, 7, "conv1", strides=2, use_bias=use_bias)(inputs)
  x = kit.act(kit.bn(x, "bn1", batch_norm), activation, "act1")
  x = kit.layers.MaxPool2D(3, strides=2, padding="same", name="pool1")(x)
  channels = stem
  for s, (width, n) in enumerate(STAGES, start=1):
    w = _common.scaled(width, width_multiplier)
    for b in range(1, n + 1):
      p = f"stage{s}_block{b}"
      stride = 2 if (s > 1 and b == 1) else 1
      h = kit.act(conv_bn(x, w, 1, p, 1), activation, f"{p}_act1")
      h = kit.act(conv_bn(h, w, 3, p, 2, stride), activation, f"{p}_act2")
      h = conv_bn(h, EXPANSION * w, 1, p, 3)
      projection = None
      if stride != 1 or channels != EXPANSION * w:
        projection = inits.conv(EXPANSION * w, 1, f"{p}_shortcut",
                                strides=stride, use_bias=use_bias)
      x = residual(kit, x, h, projection, p, num_blocks, batch_norm,
                   activation)
      channels = EXPANSION * w
  x = kit.layers.GlobalAveragePooling2D(name="pool")(x)
  logits = inits.dense(num_classes, "logits")(x)
  return kit.Model(inputs, logits,
                   name="stable_resnet50" if stable else "resnet50")
