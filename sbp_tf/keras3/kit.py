"""The Keras 3 hooks of the pruning engine (:class:`sbp_tf.pruning.kit.Kit`).

Usage::

    from sbp_tf.keras3.kit import KERAS3
    sbp_tf.pruning.diagnostics.connectivity(model, masks, kit=KERAS3)
"""

from sbp_tf.keras3 import saliency, targets
from sbp_tf.keras3._runtime import check_model
from sbp_tf.pruning import kit as _kit

KERAS3 = _kit.Kit("keras3", "keras3", check_model, targets.prunable_targets,
                  targets.unprunable_layers, saliency.ScoreContext)

__all__ = ["KERAS3"]
