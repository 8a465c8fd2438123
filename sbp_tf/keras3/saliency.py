"""Gradients and Hessian-gradient products of a Keras 3 model's loss.

One implementation for both paths: :mod:`sbp_tf.pruning.saliency` (loss
plans per output, ``loss_weights``, a softmax head detected, nested data,
``g`` and ``H g`` by ``tf.GradientTape``) reads the model's own Keras, so a
Keras 3 model gets Keras 3 losses (``keras.losses``); a loss of the other
Keras is refused with the fix. Here is only what Keras 3 adds: the
TensorFlow backend is required, and scoring runs on one device.

Usage::

    from sbp_tf.keras3 import saliency
    ctx = saliency.ScoreContext(model=model, targets=targets, data=(x, y))
    g = ctx.gradients()                   # key -> float64 array
"""

import dataclasses

from sbp_tf.keras3._runtime import require_tensorflow
from sbp_tf.pruning import scores as _scores


@dataclasses.dataclass
class ScoreContext(_scores.ScoreContext):
  """:class:`sbp_tf.pruning.ScoreContext` for a Keras 3 model (TensorFlow
  backend, one device)."""

  def _saliency(self):
    require_tensorflow("gradient saliency")
    if self.strategy is not None:
      raise ValueError("sbp_tf.keras3 scores on one device; strategy= is "
                       "not supported. Fix: pass strategy=None.")
    return super()._saliency()


__all__ = ["ScoreContext"]
