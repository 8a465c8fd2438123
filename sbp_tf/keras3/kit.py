"""The Keras 3 hooks of the pruning engine (:class:`sbp_tf.pruning.kit.Kit`).

Usage::

    from sbp_tf.keras3.kit import KERAS3
    sbp_tf.pruning.diagnostics.connectivity(model, masks, kit=KERAS3)
"""

import functools

from sbp_tf.keras3 import state, targets
from sbp_tf.pruning.kit import Kit

KERAS3 = Kit("keras3", targets.prunable_targets,
             functools.partial(state.linearized, layers=True))

__all__ = ["KERAS3"]
