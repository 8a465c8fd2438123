"""Helpers shared by the model families: options checks and initializers."""

from sbp_tf import eoc
from sbp_tf import initializers
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


class Inits:
  """Fresh kernel/bias initializers per layer for one init scheme.

  The EOC sigma_w is solved once; every layer gets its own initializer object
  (kept as ``layer.kernel_initializer``, exposing ``.sigma_w``). With a seed,
  layer i uses seed + i so that layers differ but builds are reproducible.
  """

  def __init__(self, init, activation, sigma_b=None, seed=None):
    if sigma_b is not None and not sigma_b >= 0:
      raise ValueError(f"sigma_b must be >= 0, got {sigma_b!r}. Fix: pass a "
                       "bias standard deviation or None for the default.")
    self._proto = initializers.get(init, activation, sigma_b)
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
    return initializers.bias_for(kernel_init)

  def dense(self, units, name, use_bias=True):
    k = self.kernel()
    return keras.layers.Dense(units, kernel_initializer=k, use_bias=use_bias,
                              bias_initializer=self.bias(k), name=name)

  def conv(self, filters, kernel_size, name, strides=1, use_bias=True):
    k = self.kernel()
    return keras.layers.Conv2D(filters, kernel_size, strides=strides,
                               padding="same", use_bias=use_bias,
                               kernel_initializer=k,
                               bias_initializer=self.bias(k), name=name)
