"""Helpers shared by the model families: options checks, the Kit, initializers.

Every zoo builder is written once, against a :class:`Kit` (one Keras'
layers, ``Input``, ``Model``, initializers and ``StableScale``), and serves
both Keras versions: :data:`TF_KERAS_KIT` here (tf_keras, ``sbp_tf.models``)
and ``KERAS3_KIT`` in :mod:`sbp_tf.keras3.models`, built only when that
module is imported so that ``import sbp_tf`` never imports Keras 3.
"""

from sbp_tf import eoc
from sbp_tf import initializers
from sbp_tf import layers
from sbp_tf.compat import keras


def check_activation(activation) -> str:
  """A Keras activation name also known to :mod:`sbp_tf.eoc`."""
  if not isinstance(activation, str) or activation.lower() not in (
      eoc.ACTIVATIONS):
    raise ValueError(f"Unknown activation {activation!r}. Fix: use one of "
                     f"{list(eoc.ACTIVATIONS)}.")
  return activation.lower()


def scaled(width: int, multiplier: float) -> int:
  """``max(1, round(width * multiplier))``: channel counts for cheap runs."""
  if not multiplier > 0:
    raise ValueError(f"width_multiplier must be > 0, got {multiplier!r}. Fix: "
                     "e.g. width_multiplier=0.25 for CPU-scale runs.")
  return max(1, int(round(width * multiplier)))


def check_positive_int(name, value):
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be an int >= 1, got {value!r}. Fix: pass "
                     f"a positive integer {name}.")
  return value


def check_image_shape(input_shape, family: str, example="(32, 32, 3)"):
  """Raises unless ``input_shape`` is ``(H, W, C)``."""
  if len(input_shape) != 3:
    raise ValueError(f"{family} needs an (H, W, C) input_shape, got "
                     f"{input_shape}. Fix: pass e.g. {example}.")


class Kit:
  """What the zoo builders take from one Keras version.

  Args:
    keras_module: tf_keras or Keras 3; gives ``layers``, ``Input``, ``Model``.
    inits_module: its initializers module (``get``, ``bias_for``).
    stable_scale: its ``StableScale`` layer class.
    name: 'tf_keras' or 'keras3' (for messages).
  """

  def __init__(self, keras_module, inits_module, stable_scale, name: str):
    self.keras = keras_module
    self.layers = keras_module.layers
    self.Input = keras_module.Input  # pylint: disable=invalid-name
    self.Model = keras_module.Model  # pylint: disable=invalid-name
    self.initializers = inits_module
    self.StableScale = stable_scale  # pylint: disable=invalid-name
    self.name = name

  def inits(self, init, activation, sigma_b=None, seed=None) -> "Inits":
    """Fresh per-layer initializers of this Keras (see :class:`Inits`)."""
    return Inits(self, init, activation, sigma_b, seed)

  def bn(self, x, name, on: bool):
    """``BatchNormalization(name)(x)`` when ``on``, else ``x``."""
    return self.layers.BatchNormalization(name=name)(x) if on else x

  def act(self, x, activation, name):
    """``phi(x)`` as an ``Activation`` layer named ``name``."""
    return self.layers.Activation(activation, name=name)(x)

  def __repr__(self):
    return f"Kit({self.name})"


TF_KERAS_KIT = Kit(keras, initializers, layers.StableScale, "tf_keras")


class Inits:
  """Fresh kernel/bias initializers per layer for one init scheme.

  The EOC sigma_w is solved once; every layer gets its own initializer object
  (kept as ``layer.kernel_initializer``, exposing ``.sigma_w``). With a seed,
  layer i uses seed + i so that layers differ but builds are reproducible
  (and, seeded draws being the same on both Keras versions, identical).
  """

  def __init__(self, kit: Kit, init, activation, sigma_b=None, seed=None):
    if sigma_b is not None and not sigma_b >= 0:
      raise ValueError(f"sigma_b must be >= 0, got {sigma_b!r}. Fix: pass a "
                       "bias standard deviation or None for the default.")
    self._kit = kit
    self._proto = kit.initializers.get(init, activation, sigma_b)
    self._seed = seed
    self._count = 0

  def kernel(self, depthwise=False):
    config = self._proto.get_config()
    if self._seed is not None:
      config["seed"] = self._seed + self._count
      self._count += 1
    if "depthwise" in config:
      config["depthwise"] = depthwise
    return type(self._proto).from_config(config)

  def bias(self, kernel_init):
    return self._kit.initializers.bias_for(kernel_init)

  def dense(self, units, name, use_bias=True):
    k = self.kernel()
    return self._kit.layers.Dense(units, kernel_initializer=k,
                                  use_bias=use_bias,
                                  bias_initializer=self.bias(k), name=name)

  def conv(self, filters, kernel_size, name, strides=1, use_bias=True):
    k = self.kernel()
    return self._kit.layers.Conv2D(filters, kernel_size, strides=strides,
                                   padding="same", use_bias=use_bias,
                                   kernel_initializer=k,
                                   bias_initializer=self.bias(k), name=name)
