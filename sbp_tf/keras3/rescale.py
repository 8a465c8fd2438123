"""The rescaling trick (Hayou et al. 2021, Prop. 3) on Keras 3 models.

The formulas of :mod:`sbp_tf.pruning.rescale`: for every group of a kept
kernel's fan-in (``delta`` the mask)::

    rho = sqrt(s2 / sum_group (W delta)^2),     W <- rho * W * delta

``s2`` is ``sigma_w^2`` (the initializer's ``sigma_w`` when it has one, else
the unpruned kernel's mean fan-in second moment:
:func:`sbp_tf.pruning.rescale.target_second_moment`, reused as is). Groups:
``'offset'`` (the paper, default for ``True``): per output channel and
kernel offset, ``s2 / K`` each (``K`` offsets); ``'channel'``/``'unit'``:
per output channel. Dense kernels: per output unit; depthwise kernels: per
channel over the offsets. A group with no kept weight stays zero.

Usage::

    factors = rescale(model, masks, "offset", reference=unpruned_kernels)
"""

import importlib
import warnings
from typing import Dict, Mapping, Optional

import numpy as np

from sbp_tf.keras3._runtime import keras
from sbp_tf.keras3.targets import prunable_targets

# The module, not the function sbp_tf.pruning re-exports under its name.
_k2_rescale = importlib.import_module("sbp_tf.pruning.rescale")

normalize_mode = _k2_rescale.normalize_mode
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


def group_axes(kind: str, ndim: int, mode: str) -> tuple:
  """Axes summed per group: ``kind`` is the key's last part."""
  if kind == "depthwise_kernel":
    return tuple(range(ndim - 2))
  if ndim == 2:
    return (0,)
  return (ndim - 2,) if mode == "offset" else tuple(range(ndim - 1))


def rescaled(w: np.ndarray, delta: np.ndarray, s2: float, kind: str,
             mode: str):
  """``(rho * w * delta, rho)`` for one kernel (float64 arrays)."""
  if mode == "offset" and kind != "depthwise_kernel" and w.ndim > 2:
    s2 = s2 / int(np.prod(w.shape[:-2]))  # sigma_w^2 / K per offset
  kept = np.sum((w * delta) ** 2, axis=group_axes(kind, w.ndim, mode),
                keepdims=True)
  rho = np.where(kept > 0, np.sqrt(s2 / np.where(kept > 0, kept, 1.0)), 1.0)
  return rho * w * delta, rho


def rescale(model, masks: Mapping[str, np.ndarray], mode="offset",
            reference: Optional[Mapping[str, np.ndarray]] = None
            ) -> Dict[str, np.ndarray]:
  """Sets ``W <- rho * W * delta`` in place for every masked kernel.

  Args:
    model: a built Keras 3 model.
    masks: key -> 0/1 mask ``delta``.
    mode: ``'offset'``/``True`` or ``'channel'``/``'unit'``; False: no-op.
    reference: key -> unpruned kernels for the empirical ``sigma_w^2``
      (default: the model's current kernels).

  Returns:
    key -> the factors ``rho`` (broadcastable to the kernel).
  """
  mode = normalize_mode(mode)
  if mode is None:
    return {}
  factors = {}
  for t in prunable_targets(model):
    if t.key not in masks:
      continue
    if isinstance(t.layer, _TRANSPOSED):
      warnings.warn(f"rescale: {t.key} is a transposed convolution; its "
                    "fan-in depends on the stride, left unscaled.")
      continue
    kind = t.key.rsplit("/", 1)[-1]
    w = t.variable.numpy().astype(np.float64)
    ref = w if reference is None else np.asarray(reference[t.key], np.float64)
    s2 = _k2_rescale.target_second_moment(t.layer, kind, ref)
    new, rho = rescaled(w, np.asarray(masks[t.key], np.float64), s2, kind,
                        mode)
    t.variable.assign(new.astype(t.variable.dtype))
    factors[t.key] = rho
  return factors


__all__ = ["group_axes", "normalize_mode", "rescale", "rescaled"]
