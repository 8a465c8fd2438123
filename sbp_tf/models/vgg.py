"""VGG16 for CIFAR (13 conv layers, as in the GraSP code) and 3xVGG16.

Widths 64,64,M,128,128,M,256x3,M,512x3,M,512x3 (M = 2x2 max-pool, 'same'
padding so small inputs work), each conv 3x3 -> [BN] -> activation, then global
average pooling and one dense head. ``vgg16x3`` triples every width.

Usage::

    model = models.build("vgg16", 10, (32, 32, 3), batch_norm=True)
"""

from sbp_tf.models import _common
from sbp_tf.models.registry import zoo

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
             512, 512, 512, "M", 512, 512, 512)


def vgg(kit, num_classes, input_shape, *, width_factor=1, batch_norm=True,
        activation="relu", init="eoc", sigma_b: float = None,
        width_multiplier=1.0, seed=None):
  """VGG16: 13 x [conv3x3 -> BN -> phi], 4 max-pools, GAP, dense head.

  Params: ``sum (9 c_in + b) c_out + 4 c_out [BN] + (512 k + 1) num_classes``
  (b = 1 without BN, where convs carry biases; k = width_factor).
  """
  _common.check_image_shape(input_shape, "vgg")
  activation = _common.check_activation(activation)
  inits = kit.inits(init, activation, sigma_b, seed)
  inputs = kit.Input(input_shape, name="input")
  x = inputs
  block, index = 1, 1
  for item in VGG16_CFG:
    if item == "M":
      x = kit.layers.MaxPool2D(2, padding="same", name=f"pool{block}")(x)
      block, index = block + 1, 1
      continue
    w = _common.scaled(item * width_factor, width_multiplier)
    prefix = f"block{block}_conv{index}"
    x = inits.conv(w, 3, prefix, use_bias=not batch_norm)(x)
    x = kit.bn(x, f"{prefix}_bn", batch_norm)
    x = kit.act(x, activation, f"{prefix}_act")
    index += 1
  x = kit.layers.GlobalAveragePooling2D(name="gap")(x)
  logits = inits.dense(num_classes, "logits")(x)
  return kit.Model(inputs, logits,
                     name="vgg16" if width_factor == 1 else "vgg16x3")


zoo("vgg16", fixed={"width_factor": 1})(vgg)
zoo("vgg16x3", fixed={"width_factor": 3})(vgg)
