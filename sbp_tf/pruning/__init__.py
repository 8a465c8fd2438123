"""Pruning at initialization: scores, masks, rescaling and diagnostics.

Usage::

    from sbp_tf import pruning
    result = pruning.prune(model, "sbp", 0.9, data=(x, y), rescale=True)
    print(result.report.to_markdown())

    # The same, step by step (see sbp_tf.pruning.steps):
    scores = pruning.score(model, "sbp", data=(x, y))
    masks = pruning.select(scores, 0.9)
    pruning.apply(model, masks, rescale=True)
    pruning.methods()   # ['grasp', 'magnitude', 'mbp', 'obd', 'random', ...]
"""

from sbp_tf.pruning.targets import (  # noqa: F401
    Target, layer_targets, prunable_attrs, prunable_targets, register_target,
    registered_targets, unprunable_layers)
from sbp_tf.pruning.state import register_linearization  # noqa: F401
from sbp_tf.pruning.masks import Masks, Report  # noqa: F401
from sbp_tf.pruning.scores import (  # noqa: F401
    Method, ScoreContext, register_method, methods, method_options,
    option_types)
from sbp_tf.pruning import obd  # noqa: F401  (registers "obd")
from sbp_tf.pruning.steps import (  # noqa: F401
    ON_COLLAPSE, SCOPES, Scores, apply, diagnose, score, select)
from sbp_tf.pruning.prune import PruneResult, prune  # noqa: F401
from sbp_tf.pruning.saliency import default_loss  # noqa: F401
from sbp_tf.pruning.rescale import rescale  # noqa: F401
from sbp_tf.pruning.diagnostics import (  # noqa: F401
    Connectivity, CriticalSparsity, collapsed_layers, connectivity,
    critical_sparsity, zero_fraction)
from sbp_tf.pruning.schedule import exponential as exponential_schedule  # noqa: F401
from sbp_tf.pruning.threshold import kept_count  # noqa: F401
