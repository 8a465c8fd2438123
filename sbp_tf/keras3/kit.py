"""The Keras 3 hooks of the pruning engine (:class:`sbp_tf.pruning.kit.Kit`).

Usage::

    from sbp_tf.keras3.kit import KERAS3
    sbp_tf.pruning.diagnostics.connectivity(model, masks, kit=KERAS3)
"""

import functools

from sbp_tf.keras3 import saliency, state, synflow, targets
from sbp_tf.keras3._runtime import check_model
from sbp_tf.pruning import scores as _scores
from sbp_tf.pruning.kit import Kit


def _adapt(method):
  """SynFlow runs its Keras 3 float64 clone
  (:class:`sbp_tf.keras3.synflow.SynFlow`); other methods as they are."""
  if (isinstance(method, _scores.SynFlow)
      and not isinstance(method, synflow.SynFlow)):
    return synflow.SynFlow(precision=method.precision)
  return method


KERAS3 = Kit("keras3", "keras3", check_model, targets.prunable_targets,
             targets.unprunable_layers,
             functools.partial(state.linearized, layers=True), state.snapshot,
             saliency.ScoreContext, adapt_method=_adapt)

__all__ = ["KERAS3"]
