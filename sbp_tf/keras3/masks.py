"""The model side of :class:`sbp_tf.pruning.Masks` for Keras 3 models.

``Masks`` itself (a read-only mapping key -> float32 0/1 array with
``density``, ``collapsed``, ``save``/``load`` and ``report()``) is
framework-free and shared with the tf_keras path; its ``validate``,
``apply`` and ``report(model)`` read tf_keras models, so this module holds
their Keras 3 equivalents.

Usage::

    from sbp_tf.keras3 import masks as masks_lib
    m = masks_lib.validate(model, {"dense_1/kernel": np.ones((784, 300))})
    masks_lib.zero_pruned(model, m)            # W <- W * mask
    print(masks_lib.report(model, m).to_markdown())
"""

import warnings
from typing import Mapping

import numpy as np

from sbp_tf.keras3.targets import prunable_targets
from sbp_tf.pruning import masks as masks_lib
from sbp_tf.pruning.masks import Masks, Report

__all__ = ["Masks", "Report", "ones_like", "report", "validate",
           "zero_pruned"]


def _as_masks(masks) -> Masks:
  return masks if isinstance(masks, Masks) else Masks(masks)


def validate(model, masks: Mapping[str, np.ndarray],
             complete: bool = False) -> Masks:
  """``masks`` as :class:`Masks`, checked against ``model``'s prunable weights.

  Args:
    model: a built Keras 3 model.
    masks: key -> 0/1 array (keys of :func:`prunable_targets`).
    complete: also require a mask for every prunable weight.

  Raises:
    ValueError: a key that names no prunable weight, a shape mismatch or (with
      ``complete``) a missing key; the message names the first and the fix.
  """
  m = _as_masks(masks)
  masks_lib.check_against(m, prunable_targets(model), model.name, complete)
  return m


def zero_pruned(model, masks: Mapping[str, np.ndarray]) -> Masks:
  """Zeroes pruned weights in place, ``W <- W * mask``; returns the Masks.

  Warns when the masks keep no weight at all (constant outputs).
  """
  m = validate(model, masks)
  if m.size() and not m.kept():
    warnings.warn(f"These masks keep 0 of {m.size()} weights: every prunable "
                  "weight becomes zero and the model outputs a constant. Fix: "
                  "lower the sparsity (or check the masks file).",
                  stacklevel=2)
  for t in prunable_targets(model):
    if t.key in m:
      w = t.variable.numpy()
      t.variable.assign(w * m[t.key].astype(w.dtype))
  return m


def report(model, masks: Mapping[str, np.ndarray]) -> Report:
  """The per-layer :class:`Report` of ``masks``, rows in ``model``'s layer
  order (``layer, shape, weights, kept, density, collapsed``), with the
  whole model's weights (``model_weights``, ``model_sparsity``)."""
  m = validate(model, masks)
  targets = prunable_targets(model)
  ordered = Masks({t.key: m[t.key] for t in targets if t.key in m})
  rep = ordered.report()
  rep.model_weights = masks_lib.model_weight_count(
      model, [t.variable for t in targets])
  return rep


def ones_like(model) -> Masks:
  """All-kept masks for every prunable weight of ``model``."""
  return Masks({t.key: np.ones(tuple(t.variable.shape), np.float32)
                for t in prunable_targets(model)})
