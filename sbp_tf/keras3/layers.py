"""Stable ResNet residual scaling as a Keras 3 layer (Hayou et al., 2021).

``out = shortcut + branch / sqrt(L)`` with ``L`` the number of residual
blocks: the formula of :class:`sbp_tf.layers.StableScaleMath` (shared with
the tf_keras layer) on Keras 3's ``Layer`` and ``keras.ops``, registered
as ``sbp_tf_keras3>StableScale`` so ``.keras`` files load with plain
``keras.saving.load_model`` after ``import sbp_tf.keras3``.

Usage::

    from sbp_tf.keras3.layers import StableScale
    out = StableScale(num_blocks=15, name="block1_add")([shortcut, branch])
    # num_blocks=1 (scale 1) is the standard ResNet addition.
"""

from sbp_tf import layers as _k2  # the formula, framework-free
from sbp_tf.keras3._runtime import PACKAGE, keras


@keras.saving.register_keras_serializable(package=PACKAGE)
class StableScale(_k2.StableScaleMath, keras.layers.Layer):
  __doc__ = _k2.StableScaleMath.__doc__
  _add = staticmethod(keras.ops.add)
  _multiply = staticmethod(keras.ops.multiply)

  def compute_output_shape(self, input_shape):
    return input_shape[0]  # the shortcut's shape (both inputs share it)


__all__ = ["StableScale"]
