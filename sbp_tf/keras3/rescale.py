"""The rescaling trick (Hayou et al. 2021, Prop. 3) on Keras 3 models.

One implementation serves both paths: :func:`sbp_tf.pruning.rescale.rescale`
with the Keras 3 hooks (:data:`sbp_tf.keras3.kit.KERAS3`); the formulas,
groups and the rule of which kernels are rescaled (feed-forward Dense/Conv
only; embeddings, RNN cells and attention kernels are masked, not rescaled)
are written there once.

Usage::

    factors = rescale(model, masks, "offset", reference=unpruned_kernels)
"""

import functools
import importlib

from sbp_tf.keras3.kit import KERAS3

# The module, not the function sbp_tf.pruning re-exports under its name.
_rescale = importlib.import_module("sbp_tf.pruning.rescale")

normalize_mode = _rescale.normalize_mode
group_axes = _rescale.group_axes
rescaled = _rescale.rescaled
rescale = functools.partial(_rescale.rescale, kit=KERAS3)

__all__ = ["group_axes", "normalize_mode", "rescale", "rescaled"]
