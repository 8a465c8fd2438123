"""Bottleneck ResNet-50 for ImageNet (224x224), standard or Stable ResNet.

Stem conv7x7/2 (64) -> [BN] -> phi -> maxpool3x3/2, then stages of
[3, 4, 6, 3] bottlenecks (1x1 w -> 3x3 w -> 1x1 4w, stride on the 3x3 as in
ResNet v1.5) with w = 64/128/256/512, 1x1 projection shortcut at each stage's
first block, ``out = phi(shortcut + s * F(x))`` with ``s = 1/sqrt(16)`` when
stable, global average pooling, dense head.

Usage::

    model = models.build("resnet50_imagenet", 1000, (224, 224, 3), stable=True)
"""

from sbp_tf.compat import keras
from sbp_tf.layers import StableScale
from sbp_tf.models import _common
from sbp_tf.models.registry import register

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
EXPANSION = 4


@register("resnet50_imagenet")
def resnet50_imagenet(num_classes, input_shape, *, stable=False,
                      batch_norm=True, activation="relu", init="eoc",
                      sigma_b: float = None, width_multiplier=1.0, seed=None):
  """ResNet-50: ``y_l = phi(y_{l-1} + F(y_{l-1}) / sqrt(16))`` if stable.

  25,557,032 parameters for 1000 classes with BN (BN moving stats excluded),
  as torchvision's resnet50; Keras also counts the 53,120 moving statistics.
  """
  if len(input_shape) != 3:
    raise ValueError(f"resnet50_imagenet needs an (H, W, C) input_shape, got "
                     f"{input_shape}. Fix: pass e.g. (224, 224, 3).")
  activation = _common.check_activation(activation)
  inits = _common.Inits(init, activation, sigma_b, seed)
  use_bias = not batch_norm
  num_blocks = sum(n for _, n in STAGES)

  def bn(x, name):
    return keras.layers.BatchNormalization(name=name)(x) if batch_norm else x

  def act(x, name):
    return keras.layers.Activation(activation, name=name)(x)

  inputs = keras.Input(input_shape, name="input")
  stem = _common.scaled(64, width_multiplier)
  x = inits.conv(stem, 7, "conv1", strides=2, use_bias=use_bias)(inputs)
  x = act(bn(x, "bn1"), "act1")
  x = keras.layers.MaxPool2D(3, strides=2, padding="same", name="pool1")(x)
  channels = stem
  for s, (width, n) in enumerate(STAGES, start=1):
    w = _common.scaled(width, width_multiplier)
    for b in range(1, n + 1):
      p = f"stage{s}_block{b}"
      stride = 2 if (s > 1 and b == 1) else 1
      h = inits.conv(w, 1, f"{p}_conv1", use_bias=use_bias)(x)
      h = act(bn(h, f"{p}_bn1"), f"{p}_act1")
      h = inits.conv(w, 3, f"{p}_conv2", strides=stride, use_bias=use_bias)(h)
      h = act(bn(h, f"{p}_bn2"), f"{p}_act2")
      h = inits.conv(EXPANSION * w, 1, f"{p}_conv3", use_bias=use_bias)(h)
      h = bn(h, f"{p}_bn3")
      shortcut = x
      if stride != 1 or channels != EXPANSION * w:
        shortcut = inits.conv(EXPANSION * w, 1, f"{p}_shortcut", strides=stride,
                              use_bias=use_bias)(x)
        shortcut = bn(shortcut, f"{p}_shortcut_bn")
      x = StableScale(num_blocks if stable else 1, name=f"{p}_add")(
          [shortcut, h])
      x = act(x, f"{p}_out")
      channels = EXPANSION * w
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  logits = inits.dense(num_classes, "logits")(x)
  return keras.Model(inputs, logits,
                     name="stable_resnet50" if stable else "resnet50")
