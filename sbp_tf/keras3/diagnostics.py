"""What masks do to a Keras 3 model at init: collapse, connectivity, critical
sparsity.

The checks of :mod:`sbp_tf.pruning.diagnostics`, run with the Keras 3 hooks
(:data:`sbp_tf.keras3.kit.KERAS3`): one implementation serves both paths.

Usage::

    from sbp_tf.keras3 import diagnostics
    diagnostics.connectivity(model, masks).connected
    diagnostics.diagnose(model, masks, scores)["critical_sparsity"]
"""

import functools

from sbp_tf.keras3.kit import KERAS3
from sbp_tf.pruning import diagnostics as _diagnostics
from sbp_tf.pruning import steps as _steps

Connectivity = _diagnostics.Connectivity
critical_sparsity = _diagnostics.critical_sparsity
collapsed_layers = _diagnostics.collapsed_layers
connectivity = functools.partial(_diagnostics.connectivity, kit=KERAS3)
diagnose = functools.partial(_steps.diagnose, kit=KERAS3)

__all__ = ["Connectivity", "collapsed_layers", "connectivity",
           "critical_sparsity", "diagnose"]
