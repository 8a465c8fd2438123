"""Fully connected network of constant width (the paper's FFNN).

``h_1 = W_1 x + b_1``, ``h_{l+1} = W_{l+1} phi(h_l) + b_{l+1}`` for ``depth``
hidden layers, then a dense head on ``phi(h_L)``. Layers ``dense_<l>``
(pre-activations) and ``act_<l>``, head ``logits``.

Usage::

    model = models.build("ffnn", 10, (28, 28, 1), depth=100, width=300,
                         activation="tanh", init="eoc")
"""

from sbp_tf.models import _common
from sbp_tf.models.registry import zoo


@zoo("ffnn")
def ffnn(kit, num_classes, input_shape, *, depth=100, width=300, activation="tanh",
         init="eoc", sigma_b: float = None, width_multiplier=1.0, seed=None):
  """FFNN with ``depth`` hidden Dense layers of ``width`` units.

  Params: ``sum_l (fan_in_l + 1) * width + (width + 1) * num_classes``.
  ``kit`` (a :class:`~sbp_tf.models._common.Kit`) is the Keras it builds with.
  """
  _common.check_positive_int("depth", depth)
  _common.check_positive_int("width", width)
  activation = _common.check_activation(activation)
  units = _common.scaled(width, width_multiplier)
  inits = kit.inits(init, activation, sigma_b, seed)
  inputs = kit.Input(input_shape, name="input")
  x = kit.layers.Flatten(name="flatten")(inputs)
  for l in range(1, depth + 1):
    x = inits.dense(units, f"dense_{l}")(x)
    x = kit.act(x, activation, f"act_{l}")
  logits = inits.dense(num_classes, "logits")(x)
  return kit.Model(inputs, logits, name="ffnn")
