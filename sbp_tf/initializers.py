"""Gaussian fan-in initializers on, below and above the Edge of Chaos.

All kernels are drawn as ``W ~ N(0, sigma_w^2 / fan_in)`` (untruncated) and the
matching biases as ``b ~ N(0, sigma_b^2)`` (zeros when ``sigma_b == 0``), the
parameterization of the mean-field theory in :mod:`sbp_tf.eoc`.

``fan_in`` is ``prod(shape[:-1])``: ``shape[0]`` for Dense, ``k_1...k_d * C_in``
for Conv kernels of any rank. DepthwiseConv kernels ``(k_h, k_w, C_in, M)``
see only ``k_h * k_w`` inputs per output, so pass ``depthwise=True`` there
(fan_in = ``prod(shape[:-2])``).

Every kernel initializer exposes ``.sigma_w`` and ``.sigma_b`` and builds its
bias initializer with ``.bias_initializer()``; models keep the kernel
initializer on the layer (``layer.kernel_initializer.sigma_w``).

The formulas are written once, in the framework-free mixins
(``GaussianBiasMath``, ``GaussianMath``, ``EdgeOfChaosMath``,
``OrderedPhaseMath``, and the name lookup ``Family``); the classes here add
tf_keras' ``Initializer`` base, TF draws and the ``sbp_tf>Name``
registration, and :mod:`sbp_tf.keras3.initializers` does the same for Keras 3.

Usage::

    from sbp_tf import initializers
    init = initializers.EdgeOfChaos("tanh", sigma_b=0.2)   # sigma_w ~ 1.304
    layer = keras.layers.Dense(64, kernel_initializer=init,
                               bias_initializer=init.bias_initializer())
"""

import math

import numpy as np

from sbp_tf import compat
from sbp_tf import eoc
from sbp_tf.compat import keras, tf


# Defaults of the authors' code: biases N(0, 0.2^2) for smooth activations;
# positively homogeneous ones (relu) only have an EOC at sigma_b = 0.
DEFAULT_SIGMA_B = 0.2
ORDERED_SIGMA_W = math.sqrt(0.1)   # (sigma_w^2, sigma_b^2) = (0.1, 1)
ORDERED_SIGMA_B = 1.0


def default_sigma_b(activation) -> float:
  """0 for relu/linear (their only EOC point), else 0.2 (the authors' value)."""
  return 0.0 if eoc.is_homogeneous(activation) else DEFAULT_SIGMA_B


def fan_in(shape, depthwise: bool = False) -> int:
  """``prod(shape[:-1])`` (Dense/Conv), or ``prod(shape[:-2])`` if depthwise.

  Example: ``fan_in((3, 3, 16, 32)) == 144``.
  """
  shape = tuple(int(d) for d in shape)
  if len(shape) < 2 or (depthwise and len(shape) < 3):
    raise ValueError(
        f"Kernel shape {shape} has no fan-in axis. Fix: use this initializer "
        "for Dense/Conv kernels (rank >= 2; depthwise rank >= 3), and "
        ".bias_initializer() for biases.")
  return int(np.prod(shape[:-2] if depthwise else shape[:-1]))


def _activation_name(activation):
  if isinstance(activation, str):
    return activation
  return getattr(activation, "__name__", "callable")


# --- The formulas, shared by the tf_keras classes below and the Keras 3 ones
# (sbp_tf.keras3.initializers). A framework subclass adds its Initializer
# base, its registration and two draws: ``_normal(shape, stddev, dtype, seed,
# stream)`` (stream 0 kernels, 1 biases) and ``_zeros(shape, dtype)``.


def check_sigma_b(sigma_b) -> float:
  """``float(sigma_b)`` if it is a finite ``sigma_b >= 0``, else raises."""
  if not (np.isfinite(sigma_b) and sigma_b >= 0):
    raise ValueError(f"sigma_b must be >= 0, got {sigma_b!r}. Fix: pass the "
                     "bias standard deviation, e.g. 0.2.")
  return float(sigma_b)


class GaussianBiasMath:
  """Bias initializer ``b ~ N(0, sigma_b^2)``; zeros when ``sigma_b == 0``.

  Example: ``keras.layers.Dense(8, bias_initializer=GaussianBias(0.2))``.
  """

  def __init__(self, sigma_b: float = 0.0, seed=None):
    self.sigma_b = check_sigma_b(sigma_b)
    self.seed = seed

  def __call__(self, shape, dtype=None, **kwargs):
    if self.sigma_b == 0:
      return self._zeros(shape, dtype)
    return self._normal(shape, self.sigma_b, dtype, self.seed, 1)

  def get_config(self):
    return {"sigma_b": self.sigma_b, "seed": self.seed}


class GaussianMath:
  """Kernel initializer ``W ~ N(0, sigma_w^2 / fan_in)``.

  Args:
    sigma_w: weight scale (``sqrt(2)`` is He, ``1`` is LeCun).
    sigma_b: standard deviation of the matching bias initializer.
    seed: int for reproducible draws (the same values on every call), or None
      to draw from the global seed (``keras.utils.set_random_seed``).
    depthwise: True for DepthwiseConv kernels (fan_in excludes C_in and M).

  Example: ``Gaussian(2 ** 0.5)((3, 3, 16, 32))`` has std ``sqrt(2 / 144)``.
  """

  bias_class = None  # the framework's GaussianBias, set by each subclass

  def __init__(self, sigma_w: float = 1.0, sigma_b: float = 0.0, seed=None,
               depthwise: bool = False):
    if not (np.isfinite(sigma_w) and sigma_w > 0):
      raise ValueError(f"sigma_w must be a finite positive number, got "
                       f"{sigma_w!r}. Fix: pass e.g. sigma_w=1.0.")
    self.sigma_b = check_sigma_b(sigma_b)  # before any other state is set
    self.sigma_w = float(sigma_w)
    self.seed = seed
    self.depthwise = bool(depthwise)

  def stddev(self, shape) -> float:
    """``sigma_w / sqrt(fan_in(shape))``."""
    return self.sigma_w / math.sqrt(fan_in(shape, self.depthwise))

  def __call__(self, shape, dtype=None, **kwargs):
    return self._normal(shape, self.stddev(shape), dtype, self.seed, 0)

  def bias_initializer(self):
    """The matching ``N(0, sigma_b^2)`` bias initializer (same framework)."""
    return self.bias_class(self.sigma_b, seed=self.seed)

  def get_config(self):
    return {"sigma_w": self.sigma_w, "sigma_b": self.sigma_b,
            "seed": self.seed, "depthwise": self.depthwise}

  def __repr__(self):
    return (f"{type(self).__name__}(sigma_w={self.sigma_w:.6g}, "
            f"sigma_b={self.sigma_b:.6g})")


class EdgeOfChaosMath:
  """Gaussian init with sigma_w on the Edge of Chaos of ``activation``.

  ``sigma_w = eoc.eoc_sigma_w(activation, sigma_b)``, i.e.
  ``sigma_w^2 E[phi'(sqrt(q*) Z)^2] = 1``; ``W ~ N(0, sigma_w^2 / fan_in)``.
  For relu this is He init (sigma_w = sqrt 2, sigma_b = 0). Mixed in before
  the framework's Gaussian.

  Args:
    activation: a name from ``eoc.ACTIVATIONS`` or a NumPy callable.
    sigma_b: bias std; None = 0 for relu/linear, 0.2 otherwise.
    seed, depthwise: as in :class:`Gaussian`.
    sigma_w: the precomputed EOC value (used when loading saved models).

  Example: ``EdgeOfChaos('tanh', sigma_b=0.2).sigma_w`` ~ 1.3041.
  """

  def __init__(self, activation="relu", sigma_b=None, seed=None,
               depthwise: bool = False, sigma_w=None):
    if sigma_b is None:
      sigma_b = default_sigma_b(activation)
    if sigma_w is None:
      sigma_w = eoc.eoc_sigma_w(activation, sigma_b)
    super().__init__(sigma_w, sigma_b, seed=seed, depthwise=depthwise)
    self.activation = _activation_name(activation)

  def get_config(self):
    return {**super().get_config(), "activation": self.activation}


class OrderedPhaseMath:
  """Ordered-phase control init, by default ``(sigma_w^2, sigma_b^2) = (0.1, 1)``.

  ``W ~ N(0, sigma_w^2 / fan_in)``; raises unless ``eoc.phase`` is 'ordered'
  (``chi = sigma_w^2 E[phi'(sqrt(q*) Z)^2] < 1``) for ``activation``. Mixed
  in before the framework's Gaussian.

  Example: ``OrderedPhase('tanh').sigma_w ** 2`` == 0.1.
  """

  def __init__(self, activation="tanh", sigma_w=ORDERED_SIGMA_W,
               sigma_b=ORDERED_SIGMA_B, seed=None, depthwise: bool = False):
    p = eoc.phase(activation, sigma_w, sigma_b)
    if p != "ordered":
      raise ValueError(
          f"(sigma_w={sigma_w}, sigma_b={sigma_b}) is in the {p!r} phase for "
          f"{_activation_name(activation)}, not 'ordered'. Fix: use a smaller "
          "sigma_w, e.g. the default sqrt(0.1).")
    super().__init__(sigma_w, sigma_b, seed=seed, depthwise=depthwise)
    self.activation = _activation_name(activation)

  def get_config(self):
    return {**super().get_config(), "activation": self.activation}


INIT_NAMES = ("eoc", "ordered", "he", "lecun", "glorot")


class Family:
  """One framework's initializer classes and the name lookup over them.

  Args:
    keras_module: that framework's keras (tf_keras or Keras 3).
    gaussian, edge_of_chaos, ordered_phase: its kernel initializer classes.
    kind: how errors name its initializers, e.g. "keras Initializer".
  """

  def __init__(self, keras_module, gaussian, edge_of_chaos, ordered_phase,
               kind: str):
    self.keras = keras_module
    self.gaussian, self.edge_of_chaos = gaussian, edge_of_chaos
    self.ordered_phase, self.kind = ordered_phase, kind

  def get(self, init, activation="relu", sigma_b=None, seed=None,
          depthwise: bool = False):
    """A kernel initializer from a name, for ``activation``.

    Names: 'eoc' (EdgeOfChaos), 'ordered' (OrderedPhase), 'he' (sigma_w =
    sqrt 2), 'lecun' (sigma_w = 1), 'glorot' (keras GlorotNormal, no
    ``.sigma_w``), or an initializer instance of this framework (returned as
    is). ``sigma_b`` defaults per init.

    Example: ``get('eoc', 'tanh').sigma_w`` ~ 1.3041.
    """
    if isinstance(init, self.keras.initializers.Initializer):
      return init
    if not isinstance(init, str):
      raise TypeError(f"init must be a name or a {self.kind}, got "
                      f"{type(init).__name__}. Fix: pass one of {INIT_NAMES}.")
    name = init.lower()
    if name == "eoc":
      return self.edge_of_chaos(activation, sigma_b, seed=seed,
                                depthwise=depthwise)
    if name == "ordered":
      sb = ORDERED_SIGMA_B if sigma_b is None else sigma_b
      return self.ordered_phase(activation, sigma_b=sb, seed=seed,
                                depthwise=depthwise)
    if name in ("he", "lecun"):
      sw = math.sqrt(2.0) if name == "he" else 1.0
      return self.gaussian(sw, sigma_b or 0.0, seed=seed, depthwise=depthwise)
    if name == "glorot":
      return self.keras.initializers.GlorotNormal(seed=seed)
    raise ValueError(f"Unknown init {init!r}. Fix: use one of {INIT_NAMES} or "
                     f"pass a {self.kind}.")

  def bias_for(self, kernel_init):
    """The bias initializer matching ``kernel_init`` (zeros if it has none)."""
    make = getattr(kernel_init, "bias_initializer", None)
    return make() if callable(make) else self.keras.initializers.Zeros()


# --- tf_keras (Keras 2) classes. ---


class _TFKerasDraws:
  """tf_keras draws: ``tf.random.normal`` under TF's global seed, or
  ``tf.random.stateless_normal(shape, [seed, stream])`` when seeded."""

  @staticmethod
  def _normal(shape, stddev, dtype, seed, stream):
    dtype = tf.as_dtype(dtype or keras.backend.floatx())
    if seed is None:
      return tf.random.normal(shape, 0.0, stddev, dtype)
    return tf.random.stateless_normal(shape, [seed, stream], 0.0, stddev,
                                      dtype)

  @staticmethod
  def _zeros(shape, dtype):
    return tf.zeros(shape, tf.as_dtype(dtype or keras.backend.floatx()))


@compat.register_serializable
class GaussianBias(_TFKerasDraws, GaussianBiasMath,
                   keras.initializers.Initializer):
  __doc__ = GaussianBiasMath.__doc__


@compat.register_serializable
class Gaussian(_TFKerasDraws, GaussianMath, keras.initializers.Initializer):
  __doc__ = GaussianMath.__doc__
  bias_class = GaussianBias


@compat.register_serializable
class EdgeOfChaos(EdgeOfChaosMath, Gaussian):
  __doc__ = EdgeOfChaosMath.__doc__


@compat.register_serializable
class OrderedPhase(OrderedPhaseMath, Gaussian):
  __doc__ = OrderedPhaseMath.__doc__


_FAMILY = Family(keras, Gaussian, EdgeOfChaos, OrderedPhase,
                 "keras Initializer")
get = _FAMILY.get
bias_for = _FAMILY.bias_for


__all__ = ["EdgeOfChaos", "EdgeOfChaosMath", "Family", "Gaussian",
           "GaussianBias", "GaussianBiasMath", "GaussianMath", "OrderedPhase",
           "OrderedPhaseMath", "INIT_NAMES", "bias_for", "check_sigma_b",
           "default_sigma_b", "fan_in", "get"]
