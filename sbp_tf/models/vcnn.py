"""The paper's vanilla CNN: ``depth`` 3x3 convolutions of constant width.

No batch norm and no residual connections, stride 1 with 'same' padding, then
global average pooling and a dense head. Layers ``conv_<l>``
(pre-activations), ``act_<l>``, ``pool``, ``logits``.

Usage::

    model = models.build("vcnn", 10, (32, 32, 3), depth=100, width=128)
"""

from sbp_tf.compat import keras
from sbp_tf.models import _common
from sbp_tf.models.registry import register


@register("vcnn")
def vcnn(num_classes, input_shape, *, depth=100, width=128, activation="tanh",
         init="eoc", sigma_b: float = None, width_multiplier=1.0, seed=None):
  """Vanilla CNN: ``h_{l+1} = conv3x3(phi(h_l)) + b``, depth ``depth``.

  Params: ``(9 C_in + 1) w + (depth - 1)(9 w + 1) w + (w + 1) num_classes``.
  """
  _common.check_positive_int("depth", depth)
  _common.check_positive_int("width", width)
  if len(input_shape) != 3:
    raise ValueError(f"vcnn needs an (H, W, C) input_shape, got {input_shape}."
                     " Fix: pass e.g. (32, 32, 3).")
  activation = _common.check_activation(activation)
  w = _common.scaled(width, width_multiplier)
  inits = _common.Inits(init, activation, sigma_b, seed)
  inputs = keras.Input(input_shape, name="input")
  x = inputs
  for l in range(1, depth + 1):
    x = inits.conv(w, 3, f"conv_{l}")(x)
    x = keras.layers.Activation(activation, name=f"act_{l}")(x)
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  logits = inits.dense(num_classes, "logits")(x)
  return keras.Model(inputs, logits, name="vcnn")
