"""Stable ResNet residual scaling (Hayou et al., 2021).

A standard residual block outputs ``shortcut + branch``; its variance (and the
gradient norm of the first layers) grows with the number of blocks L. Stable
ResNet scales every residual branch by ``1 / sqrt(L)``, including the
downsampling blocks, which keeps both bounded as L grows.

Usage::

    from sbp_tf.layers import StableScale
    out = StableScale(num_blocks=15, name="block1_add")([shortcut, branch])
    # num_blocks=1 (scale 1) is the standard ResNet addition.
"""

import math
import operator

from sbp_tf import compat
from sbp_tf.compat import keras


class StableScaleMath:
  """``out = shortcut + branch / sqrt(num_blocks)``; called on ``[shortcut, branch]``.

  The formula for both Keras versions: a framework subclass adds its
  ``Layer`` base, its registration and the ops ``_add(a, b)`` and
  ``_multiply(a, s)`` (plain ``+``/``*`` in tf_keras, ``keras.ops`` in
  Keras 3).

  Args:
    num_blocks: L, the total number of residual blocks of the network
      (1 gives the standard ResNet sum).

  Example: ``StableScale(4)([x, y])`` equals ``x + y / 2``.
  """

  def __init__(self, num_blocks: int = 1, **kwargs):
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or (
        num_blocks < 1):
      raise ValueError(f"num_blocks must be an int >= 1, got {num_blocks!r}. "
                       "Fix: pass the number of residual blocks L.")
    super().__init__(**kwargs)
    self.num_blocks = num_blocks
    self.scale = 1.0 / math.sqrt(num_blocks)

  def call(self, inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
      raise ValueError("StableScale expects [shortcut, branch]. Fix: call it "
                       "as StableScale(L)([shortcut, branch]).")
    shortcut, branch = inputs
    if self.num_blocks == 1:  # the standard sum, without a multiply by 1
      return self._add(shortcut, branch)
    return self._add(shortcut, self._multiply(branch, self.scale))

  def get_config(self):
    return {**super().get_config(), "num_blocks": self.num_blocks}


@compat.register_serializable
class StableScale(StableScaleMath, keras.layers.Layer):
  __doc__ = StableScaleMath.__doc__
  _add = staticmethod(operator.add)
  _multiply = staticmethod(operator.mul)


__all__ = ["StableScale", "StableScaleMath"]
