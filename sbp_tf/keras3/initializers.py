"""Keras 3 Gaussian fan-in initializers on, below and above the Edge of Chaos.

The formulas live once, in :mod:`sbp_tf.initializers` (``GaussianMath``,
``EdgeOfChaosMath``, ...); this module only gives them Keras 3's
``Initializer`` base, Keras 3 draws and the registration
``sbp_tf_keras3>Name``:

* kernels ``W ~ N(0, sigma_w^2 / fan_in)`` (untruncated),
  ``fan_in = prod(shape[:-1])`` (``prod(shape[:-2])`` with ``depthwise``);
* biases ``b ~ N(0, sigma_b^2)`` (zeros when ``sigma_b == 0``);
* :class:`EdgeOfChaos`: ``sigma_w = eoc.eoc_sigma_w(activation, sigma_b)``;
  :class:`OrderedPhase`: ``(sigma_w^2, sigma_b^2) = (0.1, 1)`` by default.

Random numbers: on the TensorFlow backend a seeded initializer draws with
``tf.random.stateless_normal(shape, [seed, 0])`` (biases ``[seed, 1]``),
exactly as the tf_keras ones, so both paths give identical weights for the
same seed. Other backends draw ``keras.random.normal`` from the seed (same
distribution, other values). Unseeded draws use Keras 3's global seed
(``keras.utils.set_random_seed``).

Usage::

    import keras
    from sbp_tf.keras3 import initializers
    init = initializers.EdgeOfChaos("tanh", sigma_b=0.2)   # sigma_w ~ 1.304
    layer = keras.layers.Dense(64, kernel_initializer=init,
                               bias_initializer=init.bias_initializer())
"""

from sbp_tf import initializers as _k2  # the formulas, framework-free
from sbp_tf.keras3._runtime import PACKAGE, backend, keras

DEFAULT_SIGMA_B = _k2.DEFAULT_SIGMA_B
ORDERED_SIGMA_W = _k2.ORDERED_SIGMA_W
ORDERED_SIGMA_B = _k2.ORDERED_SIGMA_B
INIT_NAMES = _k2.INIT_NAMES
default_sigma_b = _k2.default_sigma_b
fan_in = _k2.fan_in

_register = keras.saving.register_keras_serializable(package=PACKAGE)


class _Keras3Draws:
  """Keras 3 draws of ``N(0, stddev^2)``; ``stream`` 0 kernels, 1 biases."""

  @staticmethod
  def _normal(shape, stddev, dtype, seed, stream):
    dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
    if seed is None:
      return keras.random.normal(shape, 0.0, stddev, dtype=dtype)
    if backend() == "tensorflow":
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      # The tf_keras initializers' exact draw: same seed, same weights.
      return tf.random.stateless_normal(shape, [int(seed), stream], 0.0,
                                        stddev, tf.as_dtype(dtype))
    # Distinct, reproducible streams for kernels and biases of one seed.
    return keras.random.normal(shape, 0.0, stddev, dtype=dtype,
                               seed=(int(seed) * 2 + stream) % (2 ** 31))

  @staticmethod
  def _zeros(shape, dtype):
    return keras.ops.zeros(shape, dtype=dtype or keras.config.floatx())


@_register
class GaussianBias(_Keras3Draws, _k2.GaussianBiasMath,
                   keras.initializers.Initializer):
  __doc__ = _k2.GaussianBiasMath.__doc__


@_register
class Gaussian(_Keras3Draws, _k2.GaussianMath, keras.initializers.Initializer):
  __doc__ = _k2.GaussianMath.__doc__
  bias_class = GaussianBias


@_register
class EdgeOfChaos(_k2.EdgeOfChaosMath, Gaussian):
  __doc__ = _k2.EdgeOfChaosMath.__doc__


@_register
class OrderedPhase(_k2.OrderedPhaseMath, Gaussian):
  __doc__ = _k2.OrderedPhaseMath.__doc__


_FAMILY = _k2.Family(keras, Gaussian, EdgeOfChaos, OrderedPhase,
                     "Keras 3 Initializer")
get = _FAMILY.get
bias_for = _FAMILY.bias_for


__all__ = ["EdgeOfChaos", "Gaussian", "GaussianBias", "OrderedPhase",
           "INIT_NAMES", "bias_for", "default_sigma_b", "fan_in", "get"]
