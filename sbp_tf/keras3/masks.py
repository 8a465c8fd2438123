"""The model side of :class:`sbp_tf.pruning.Masks` for Keras 3 models.

``Masks`` (a read-only mapping key -> float32 0/1 array with ``density``,
``collapsed``, ``save``/``load``, ``validate``/``apply``/``report``) is one
class for both paths; these functions are its model methods with the Keras
3 hooks (:data:`sbp_tf.keras3.kit.KERAS3`).

Usage::

    from sbp_tf.keras3 import masks as masks_lib
    m = masks_lib.validate(model, {"dense_1/kernel": np.ones((784, 300))})
    masks_lib.zero_pruned(model, m)            # W <- W * mask
    print(masks_lib.report(model, m).to_markdown())
"""

from typing import Mapping

import numpy as np

from sbp_tf.keras3.kit import KERAS3
from sbp_tf.pruning.masks import Masks, Report

__all__ = ["Masks", "Report", "ones_like", "report", "validate",
           "zero_pruned"]


def _as_masks(masks) -> Masks:
  return masks if isinstance(masks, Masks) else Masks(masks)


def validate(model, masks: Mapping[str, np.ndarray],
             complete: bool = False) -> Masks:
  """``masks`` as :class:`Masks`, checked against ``model``'s prunable
  weights (:meth:`Masks.validate`)."""
  m = _as_masks(masks)
  m.validate(model, complete, kit=KERAS3)
  return m


def zero_pruned(model, masks: Mapping[str, np.ndarray]) -> Masks:
  """``W <- W * mask`` in place (:meth:`Masks.apply`); returns the Masks."""
  m = _as_masks(masks)
  m.apply(model, kit=KERAS3)
  return m


def report(model, masks: Mapping[str, np.ndarray]) -> Report:
  """The per-layer :class:`Report` of ``masks`` in ``model``'s layer order,
  with the layers left unpruned and the whole model's weights."""
  return _as_masks(masks).report(model, kit=KERAS3)


def ones_like(model) -> Masks:
  """All-kept masks for every prunable weight of ``model``."""
  return Masks.ones_like(model, kit=KERAS3)
