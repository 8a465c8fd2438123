"""CIFAR ResNets of depth 6n+2 (basic blocks), standard or Stable ResNet.

Stem conv3x3 (32 ch) -> [BN] -> phi, three stages of n basic blocks of widths
32/64/128 (the GraSP code's CIFAR ResNets), stride 2 at the first block of
stages 2 and 3, global average pooling, dense head. A block is
``out = phi(shortcut + s * F(x))``, ``F = conv3x3 -> [BN] -> phi -> conv3x3 ->
[BN]``, shortcut = identity or 1x1 conv (-> [BN]) when the shape changes, and
``s = 1 / sqrt(L)`` (L = 3n blocks) for Stable ResNet, 1 otherwise
(:class:`sbp_tf.layers.StableScale`, also in the downsampling blocks).
Convs carry biases only without batch norm.

Usage::

    model = models.build("resnet104", 10, (32, 32, 3), stable=True)
"""

from sbp_tf.models import _common
from sbp_tf.models.registry import zoo

WIDTHS = (32, 64, 128)


def residual(kit, x, h, projection, prefix, num_blocks, batch_norm,
             activation):
  """``phi(shortcut + h / sqrt(num_blocks))`` named ``<prefix>_add/_out``.

  ``shortcut`` is ``x``, or ``projection(x)`` -> [BN] when ``projection`` (a
  1x1 conv layer) is given for a change of shape.
  """
  shortcut = x
  if projection is not None:
    shortcut = kit.bn(projection(x), f"{prefix}_shortcut_bn", batch_norm)
  x = kit.StableScale(num_blocks, name=f"{prefix}_add")([shortcut, h])
  return kit.act(x, activation, f"{prefix}_out")


def cifar_resnet(kit, num_classes, input_shape, *, depth=32, stable=False,
                 batch_norm=True, activation="relu", init="eoc",
                 sigma_b: float = None, width_multiplier=1.0, seed=None):
  """ResNet-(6n+2): ``y_l = phi(y_{l-1} + F(y_{l-1}) / sqrt(L))`` if stable.

  Params (BN): ``9*3*w0 + 4*w0 + sum_blocks [9 c_in c + 9 c c + 8 c
  (+ c_in c + 4 c projection)] + (w2 + 1) num_classes``.
  """
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (
      (depth - 2) % 6):
    raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 50, "
                     f"104, ...), got {depth!r}. Fix: pick such a depth.")
  _common.check_image_shape(input_shape, "resnet")
  activation = _common.check_activation(activation)
  n = (depth - 2) // 6
  num_blocks = 3 * n
  widths = [_common.scaled(w, width_multiplier) for w in WIDTHS]
  inits = kit.inits(init, activation, sigma_b, seed)
  use_bias = not batch_norm
  inputs = kit.Input(input_shape, name="input")
  x = inits.conv(widths[0], 3, "conv1", use_bias=use_bias)(inputs)
  x = kit.act(kit.bn(x, "bn1", batch_norm), activation, "act1")
  channels = widths[0]
  for s, w in enumerate(widths, start=1):
    for b in range(1, n + 1):
      p = f"stage{s}_block{b}"
      stride = 2 if (s > 1 and b == 1) else 1
      h = inits.conv(w, 3, f"{p}_conv1", strides=stride, use_bias=use_bias)(x)
      h = kit.act(kit.bn(h, f"{p}_bn1", batch_norm), activation, f"{p}_act1")
      h = inits.conv(w, 3, f"{p}_conv2", use_bias=use_bias)(h)
      h = kit.bn(h, f"{p}_bn2", batch_norm)
      projection = None
      if stride != 1 or channels != w:
        projection = inits.conv(w, 1, f"{p}_shortcut", strides=stride,
                                use_bias=use_bias)
      x = residual(kit, x, h, projection, p, num_blocks if stable else 1,
                   batch_norm, activation)
      channels = w
  x = kit.layers.GlobalAveragePooling2D(name="pool")(x)
  logits = inits.dense(num_classes, "logits")(x)
  kind = "stable_resnet" if stable else "resnet"
  return kit.Model(inputs, logits, name=f"{kind}{depth}")


zoo("resnet_cifar")(cifar_resnet)
zoo("resnet32", fixed={"depth": 32})(cifar_resnet)
zoo("resnet50", fixed={"depth": 50})(cifar_resnet)
zoo("resnet104", fixed={"depth": 104})(cifar_resnet)
