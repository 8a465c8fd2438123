"""Exact top-k selection of weights to keep, global or per layer.

Global: one threshold over all pool weights; exactly ``K = round(d * N)``
weights survive over all ``N`` prunable weights (layers kept dense count in
both). Layerwise: each pool layer keeps ``round(d * n_l)``. With
``count_rule='floor_pruned'`` the counts are ``N - int((1 - d) * N)`` and
``n_l - int((1 - d) * n_l)`` (the reference implementation's; see
:mod:`conventions`). Ties are broken
deterministically: weights are ranked by ``(-importance, flat index)`` where
the flat index runs over the layers in target order, so the earlier weight wins.

Usage::

    masks = select({"a": np.array([3., 1.]), "b": np.array([2.])}, 2 / 3)
    # {"a": [1, 0], "b": [1]}
"""

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from sbp_tf.pruning import conventions


def kept_count(n: int, density: float, rule: str = "round") -> int:
  """How many of ``n`` weights survive: ``round(density * n)``, or with
  ``rule='floor_pruned'`` ``n - int((1 - density) * n)``
  (:func:`conventions.kept_count`)."""
  return conventions.kept_count(n, density, rule)


def _kth_largest_inplace(values: np.ndarray, k: int) -> float:
  """The ``k``-th largest of ``values`` (``1 <= k < n``), partitioning
  ``values`` in place: callers pass an array they own (a concatenation or
  a bracket), so no further copy is made."""
  n = values.size
  values.partition(n - k)
  return values[n - k]


_SAMPLE = 200_000  # sample size of the threshold search on large pools


def _kth_largest_by_sample(segments, k: int, n: int):
  """The ``k``-th largest over ``segments`` from a bracket, or None.

  A strided sample of ~``_SAMPLE`` values gives ``lo <= hi`` around the
  expected position of the k-th largest (a binomial margin of 6 standard
  deviations). If fewer than ``k`` values exceed ``hi`` and ``[lo, hi]``
  holds at least the ``k - #(> hi)`` values still needed, the k-th largest
  is the ``(k - #(> hi))``-th largest inside ``[lo, hi]``: exact whatever
  the sample, which only decides how small that bracket is. Otherwise None
  (the caller partitions everything). Avoids concatenating and partitioning
  all ``n`` scores (25M for ResNet-50).
  """
  step = max(1, n // _SAMPLE)
  sample = np.sort(np.concatenate([seg[::step] for seg in segments]))[::-1]
  m = sample.size
  r = k * m / n  # expected 0-based rank of the k-th largest in the sample
  margin = 6.0 * np.sqrt(max(r * (1.0 - r / m), 1.0)) + 16
  hi = sample[max(int(r - margin), 0)]
  lo = sample[min(int(r + margin), m - 1)]
  above = sum(int(np.count_nonzero(seg > hi)) for seg in segments)
  if above >= k:
    return None
  inside = np.concatenate([seg[(seg <= hi) & (seg >= lo)] for seg in segments])
  need = k - above
  if need > inside.size:
    return None
  return _kth_largest_tied(inside, need, lo, hi)


def _kth_largest_tied(inside: np.ndarray, need: int, lo, hi) -> float:
  """The ``need``-th largest of ``inside`` (all in ``[lo, hi]``).

  Descending, ``inside`` is ``c_hi`` copies of ``hi``, then the values in
  ``(lo, hi)``, then ``c_lo`` copies of ``lo``; so the answer is ``hi`` if
  ``need <= c_hi``, ``lo`` if ``need > n - c_lo``, else the
  ``(need - c_hi)``-th largest of the open interval. Why: pruned or dead
  weights score exactly 0 (or -inf), and numpy's introselect is about 20x
  slower per element on a mass of equal values (SynFlow's later rounds,
  re-pruning a pruned model). When the two ends hold at most 1/8 of the
  values, ``inside`` is partitioned as it is (same answer; copying out the
  open interval would cost more than the few ties do).
  """
  n = inside.size
  c_hi = int(np.count_nonzero(inside == hi))
  if need <= c_hi:
    return hi
  c_lo = int(np.count_nonzero(inside == lo))  # lo < hi here: c_hi < n
  if need > n - c_lo:
    return lo
  if c_hi + c_lo <= n // 8:
    return _kth_largest_inplace(inside, need)
  mid = inside[(inside > lo) & (inside < hi)]
  return _kth_largest_inplace(mid, need - c_hi)


def _masks_at(segments, k: int, t) -> list:
  """0/1 masks of flat ``segments`` (in order) keeping every value ``> t``
  and the first ``k - #(> t)`` positions holding ``t`` (earlier wins)."""
  above = [seg > t for seg in segments]
  missing = k - sum(int(np.count_nonzero(a)) for a in above)
  out = []
  for seg, a in zip(segments, above):
    mask = a.astype(np.float32)
    if missing > 0:
      ties = np.flatnonzero(seg == t)[:missing]
      mask[ties] = 1.0
      missing -= ties.size
    out.append(mask)
  return out


def _top_segments(segments, k: int) -> list:
  """Masks keeping the ``k`` largest over the concatenation of ``segments``.

  Same masks as ranking by a stable argsort of ``-concat(segments)``, in
  linear time: ``t``, the k-th largest value, comes from a sampled bracket
  on large pools (:func:`_kth_largest_by_sample`), else from the whole
  concatenation as the bracket ``[min, max]`` (:func:`_kth_largest_tied`,
  so masses of dead weights are counted, not partitioned); every value ``> t`` is kept, and the first
  ``k - #(> t)`` positions holding ``t`` fill the rest (no full sort: it
  dominates the selection on pools of tens of millions of weights).
  """
  n = sum(seg.size for seg in segments)
  if k >= n:
    return [np.ones(seg.size, np.float32) for seg in segments]
  if k <= 0:
    return [np.zeros(seg.size, np.float32) for seg in segments]
  t = _kth_largest_by_sample(segments, k, n) if n > 4 * _SAMPLE else None
  if t is None:
    cat = np.concatenate(segments)
    t = _kth_largest_tied(cat, k, cat.min(), cat.max())
  return _masks_at(segments, k, t)


def _top(imp: np.ndarray, k: int) -> np.ndarray:
  """0/1 mask keeping the ``k`` largest of flat ``imp`` (earlier index on ties)."""
  return _top_segments([imp], k)[0]


def select(importance: Mapping[str, np.ndarray], density: float,
           scope: str = "global", dense: Iterable[str] = (),
           alive: Optional[Mapping[str, np.ndarray]] = None,
           count_rule: str = "round") -> Dict[str, np.ndarray]:
  """Keeps the most important weights.

  Args:
    importance: key -> array; larger = keep first. Must be finite.
    density: kept fraction ``1 - sparsity`` in ``[0, 1]``.
    scope: ``'global'`` (one threshold) or ``'layerwise'``.
    dense: keys kept fully (``keep_first``/``keep_last``).
    alive: optional key -> 0/1 mask of weights still present (iterative
      pruning never revives a weight: dead ones rank last).
    count_rule: how many weights ``density`` keeps (:func:`kept_count`):
      ``'round'`` or ``'floor_pruned'``.

  Returns:
    key -> float32 0/1 mask with the shape of ``importance[key]``.

  Raises:
    ValueError: if the layers kept dense alone exceed the global budget.
  """
  conventions.check_count_rule(count_rule)
  dense = set(dense)
  keys = list(importance)
  flat = {}
  for k in keys:
    imp = np.asarray(importance[k]).ravel()
    if imp.dtype.kind != "f":  # float scores keep their dtype (float32
      imp = imp.astype(np.float64)  # selects ~2x faster than float64)
    if alive is not None and k in alive:
      imp = np.where(np.asarray(alive[k]).ravel() > 0, imp, -np.inf)
    flat[k] = imp
  out = {}
  pool = [k for k in keys if k not in dense]
  if scope == "layerwise":
    for k in keys:
      n = flat[k].size
      out[k] = (np.ones(n, np.float32) if k in dense
                else _top(flat[k], kept_count(n, density, count_rule)))
  elif scope == "global":
    total = sum(flat[k].size for k in keys)
    budget = (kept_count(total, density, count_rule)
              - sum(flat[k].size for k in dense))
    if budget < 0:
      raise ValueError(
          f"Density {density:.4g} keeps "
          f"{kept_count(total, density, count_rule)} weights, "
          f"fewer than the {total - sum(flat[k].size for k in pool)} of the "
          "layers kept dense. Fix: lower the sparsity or drop "
          "keep_first/keep_last.")
    if pool:
      for k, m in zip(pool, _top_segments([flat[k] for k in pool], budget)):
        out[k] = m
    for k in dense:
      if k in flat:
        out[k] = np.ones(flat[k].size, np.float32)
  else:
    raise ValueError(f"scope={scope!r} is not known. Fix: use 'global' or "
                     "'layerwise'.")
  return {k: out[k].reshape(np.shape(importance[k])) for k in keys}
