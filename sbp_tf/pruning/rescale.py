"""The rescaling trick (Hayou et al. 2021, Proposition 3).

An EOC network with ``W_ij ~ N(0, sigma_w^2 / N)`` has, per output unit ``i``,
fan-in second moment ``sum_j W_ij^2 ~= sigma_w^2``; the variance map
``q_i = sum_j W_ij^2 E[phi(y_j)^2] + sigma_b^2`` and the gradient factor
``chi = sigma_w^2 E[phi'(sqrt(q*) Z)^2] = 1`` depend on the weights only
through that sum. Pruning shrinks it to ``sum_j (W_ij delta_ij)^2 < sigma_w^2``
(``delta`` the mask), i.e. an effective ``sigma_w`` in the ordered phase
(``chi < 1``, exponentially vanishing signal). Rescaling every kept weight by

    rho_i = sqrt(sigma_w^2 / sum_j (W_ij delta_ij)^2),   W_ij <- rho_i W_ij delta_ij

makes ``sum_j (rho_i W_ij delta_ij)^2 = sigma_w^2`` exactly, so the pruned
network has the unpruned recursion and ``chi = 1`` again.

Convolutions, kernel ``W[beta, j, i]`` (``beta`` a spatial offset, ``j`` an
input channel, ``i`` an output channel) with ``K`` offsets:

* ``mode='offset'`` (the paper's ``rho_{i,beta}``, default for ``rescale=True``):
  ``rho_{i,beta} = sqrt((sigma_w^2 / K) / sum_j (W[beta,j,i] delta)^2)``;
  each offset gets its share ``sigma_w^2 / K``, the unit's total is ``sigma_w^2``.
* ``mode='channel'`` (alias ``'unit'``): one factor per output channel,
  ``rho_i = sqrt(sigma_w^2 / sum_{beta,j} (W[beta,j,i] delta)^2)``.

Embedding, LSTM/GRU/SimpleRNN, EinsumDense (attention) and registered
custom kernels are masked but not rescaled (one warning lists them).
Dense layers have one factor per output unit in both modes; depthwise kernels
always use ``'channel'`` (their fan-in is the offsets alone). A group whose
kept weights are all zero is left at zero. ``sigma_w^2`` is
``layer.<kernel>_initializer.sigma_w ** 2`` when the initializer defines
``sigma_w`` (sbp_tf.initializers), else the empirical unpruned value
``mean_i sum_{full fan-in} W_ij^2``.

Usage::

    factors = rescale(model, masks, mode="offset", reference=unpruned_kernels)
"""

import warnings
from typing import Dict, Mapping, Optional

import numpy as np

MODES = ("offset", "channel", "unit")
# Kernels the trick applies to, by class name so that one rule serves both
# Keras paths; the others (Embedding, RNN cells, EinsumDense/attention,
# registered custom layers) are only masked.
_FEED_FORWARD = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D",
                 "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")
_TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")


def _is_a(layer, names) -> bool:
  """``layer`` is an instance of a class of one of ``names`` (any Keras)."""
  return any(c.__name__ in names for c in type(layer).__mro__)


def normalize_mode(rescale) -> Optional[str]:
  """``False/None -> None``, ``True -> 'offset'``, else a valid mode name."""
  if rescale is None or rescale is False:
    return None
  if rescale is True:
    return "offset"
  if isinstance(rescale, str) and rescale in MODES:
    return "channel" if rescale == "unit" else rescale
  raise ValueError(f"rescale={rescale!r} is not valid. Fix: use False, True "
                   "(the paper's per output channel and kernel offset), "
                   "'offset', or 'channel' / 'unit' (per output unit).")


def _initializer(layer, attr):
  name = {"kernel": "kernel_initializer",
          "depthwise_kernel": "depthwise_initializer",
          "pointwise_kernel": "pointwise_initializer"}.get(attr)
  return getattr(layer, name, None) if name else None


def group_axes(kind: str, ndim: int, mode: str) -> tuple:
  """Axes summed per group of a kernel whose key ends in ``kind``."""
  if kind == "depthwise_kernel":
    return tuple(range(ndim - 2))
  if ndim == 2:  # Dense
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


def target_second_moment(layer, attr, reference: np.ndarray) -> float:
  """``sigma_w^2`` of the unpruned init (see module doc)."""
  init = _initializer(layer, attr)
  if init is not None and getattr(init, "sigma_w", None) is not None:
    return float(init.sigma_w) ** 2
  w = np.asarray(reference, np.float64)
  if attr == "depthwise_kernel":
    per_unit = np.sum(w ** 2, axis=tuple(range(w.ndim - 2)))
  else:
    per_unit = np.sum(w.reshape(-1, w.shape[-1]) ** 2, axis=0)
  return float(np.mean(per_unit))


def rescale(model, masks: Mapping[str, np.ndarray], mode="offset",
            reference: Optional[Mapping[str, np.ndarray]] = None, *,
            kit=None) -> Dict[str, np.ndarray]:
  """Sets ``W <- rho * W * delta`` in place for every masked kernel.

  Args:
    model: built Keras model; its kernels are the (unpruned or pruned) init.
    masks: key -> 0/1 mask ``delta``.
    mode: ``'offset'`` (paper) or ``'channel'``/``'unit'``; ``True`` = offset.
    reference: key -> unpruned kernels for the empirical ``sigma_w^2`` when the
      initializer has no ``sigma_w`` (default: the model's current kernels).
    kit: the Keras path's hooks (:mod:`sbp_tf.pruning.kit`; default
      tf_keras).

  Returns:
    key -> the factors ``rho`` (broadcastable to the kernel).
  """
  from sbp_tf.pruning import kit as kit_lib  # pylint: disable=import-outside-toplevel
  mode = normalize_mode(mode)
  if mode is None:
    return {}
  kit = kit_lib.resolve(kit)
  factors, skipped = {}, []
  for t in kit.prunable_targets(model):
    if t.key not in masks:
      continue
    if _is_a(t.layer, _TRANSPOSED):
      warnings.warn(f"rescale: {t.key} is a transposed convolution; its "
                    "fan-in depends on the stride, left unscaled.")
      continue
    if not _is_a(t.layer, _FEED_FORWARD):
      skipped.append(t.key)  # masked (W * delta), not rescaled
      continue
    kind = t.key.rsplit("/", 1)[-1]
    value = t.variable.numpy()
    w = value.astype(np.float64)
    ref = w if reference is None else np.asarray(reference[t.key], np.float64)
    s2 = target_second_moment(t.layer, kind, ref)
    new, rho = rescaled(w, np.asarray(masks[t.key], np.float64), s2, kind,
                        mode)
    t.variable.assign(new.astype(value.dtype))
    factors[t.key] = rho
  if skipped:
    warnings.warn(
        f"rescale: {len(skipped)} kernel(s) left unscaled (pruned only): "
        f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}. "
        "Proposition 3 is for feed-forward Dense/Conv fan-in sums; "
        "embeddings, recurrent (LSTM/GRU/SimpleRNN) and attention/einsum "
        "kernels have no such EOC recursion.", stacklevel=2)
  return factors
