"""The paper's vanilla CNN: ``depth`` 3x3 convolutions of constant width.

No batch norm and no residual connections, stride 1 with 'same' padding, then
global average pooling and a dense head. Layers ``conv_<l>``
(pre-activations), ``act_<l>``, ``pool``, ``logits``.

Usage::

    model = models.build("vcnn", 10, (32, 32, 3), depth=100, width=128)
"""

from sbp_tf.models import _common
from sbp_tf.models.registry import zoo


@zoo("vcnn")
def vcnn(kit, num_classes, input_shape, *, depth=100, width=128, activation="tanh",
         init="eoc", sigma_b: float = None, width_multiplier=1.0, seed=None):
  """Vanilla CNN: ``h_{l+1} = conv3x3(phi(h_l)) + b``, depth ``depth``.

  Params: ``(9 C_in + 1) w + (depth - 1)(9 w + 1) w + (w + 1) num_classes``.
  """
  _common.check_positive_int("depth", depth)
  _common.check_positive_int("width", width)
  _common.check_image_shape(input_shape, "vcnn")
  activation = _common.check_activation(activation)
  w = _common.scaled(width, width_multiplier)
  inits = kit.inits(init, activation, sigma_b, seed)
  inputs = kit.Input(input_shape, name="input")
  x = inputs
  for l in range(1, depth + 1):
    x = inits.conv(w, 3, f"conv_{l}")(x)
    x = kit.act(x, activation, f"act_{l}")
  x = kit.layers.GlobalAveragePooling2D(name="pool")(x)
  logits = inits.dense(num_classes, "logits")(x)
  return kit.Model(inputs, logits, name="vcnn")
