"""Fully connected network of constant width (the paper's FFNN).

``h_1 = W_1 x + b_1``, ``h_{l+1} = W_{l+1} phi(h_l) + b_{l+1}`` for ``depth``
hidden layers, then a dense head on ``phi(h_L)``. Layers ``dense_<l>``
(pre-activations) and ``act_<l>``, head ``logits``.

Usage::

    model = models.build("ffnn", 10, (28, 28, 1), depth=100, width=300,
                         activation="tanh", init="eoc")
"""

from sbp_tf.compat import keras
from sbp_tf.models import _common
from sbp_tf.models.registry import register


@register("ffnn")
def ffnn(num_classes, input_shape, *, depth=100, width=300, activation="tanh",
         init="eoc", sigma_b: float = None, width_multiplier=1.0, seed=None):
  """FFNN with ``depth`` hidden Dense layers of ``width`` units.

  Params: ``sum_l (fan_in_l + 1) * width + (width + 1) * num_classes``.
  """
  _common.check_positive_int("depth", depth)
  _common.check_positive_int("width", width)
  activation = _common.check_activation(activation)
  units = _common.scaled(width, width_multiplier)
  inits = _common.Inits(init, activation, sigma_b, seed)
  inputs = keras.Input(input_shape, name="input")
  x = keras.layers.Flatten(name="flatten")(inputs)
  for l in range(1, depth + 1):
    x = inits.dense(units, f"dense_{l}")(x)
    x = keras.layers.Activation(activation, name=f"act_{l}")(x)
  logits = inits.dense(num_classes, "logits")(x)
  return keras.Model(inputs, logits, name="ffnn")
