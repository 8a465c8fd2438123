"""Comparisons for the reproduction tables: Welch's t-test, Spearman's rho.

Welch's t statistic for samples ``a`` (n_a values) and ``b`` (n_b values)::

    t  = (mean(a) - mean(b)) / sqrt(s_a^2 / n_a + s_b^2 / n_b)
    df = (s_a^2/n_a + s_b^2/n_b)^2
         / ((s_a^2/n_a)^2 / (n_a - 1) + (s_b^2/n_b)^2 / (n_b - 1))

with sample variances ``s^2`` (ddof=1) and the two-sided p-value
``2 * P(T_df > |t|)`` of Student's t distribution (Welch-Satterthwaite df).

Spearman's rank correlation of paired values ``x`` and ``y`` is the Pearson
correlation of their rank vectors (ties get the average of the ranks they
span), see :func:`spearman`.

Usage::

    from tools import reproduce_stats
    reproduce_stats.welch([0.22, 0.23, 0.21], [0.10, 0.10, 0.11])
    # -> {'diff': 0.1167, 't': 17.5, 'df': 3.2, 'p': 0.00028, 'n_a': 3, 'n_b': 3}
    reproduce_stats.spearman([0.9, 0.8, 0.7], [92.1, 91.0, 91.5])  # -> 0.5
"""

import math
from typing import Dict, Optional, Sequence

import numpy as np


def welch(a: Sequence[float], b: Sequence[float]) -> Optional[Dict[str, float]]:
  """Welch's unequal-variance t-test of ``mean(a) - mean(b)``.

  Returns None when either sample has fewer than 2 values. When both samples
  have zero variance, ``t`` is +-inf (p = 0) for different means and 0
  (p = 1) for equal ones.
  """
  a = np.asarray([x for x in a if x is not None], np.float64)
  b = np.asarray([x for x in b if x is not None], np.float64)
  if a.size < 2 or b.size < 2:
    return None
  diff = float(a.mean() - b.mean())
  va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
  se2 = va + vb
  if se2 == 0:
    t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return dict(diff=diff, t=t, df=float(a.size + b.size - 2),
                p=1.0 if diff == 0 else 0.0, n_a=int(a.size), n_b=int(b.size))
  t = diff / math.sqrt(se2)
  df = se2 ** 2 / ((va ** 2 / (a.size - 1) if va else 0.0) +
                   (vb ** 2 / (b.size - 1) if vb else 0.0))
  return dict(diff=diff, t=float(t), df=float(df), p=_two_sided_p(t, df),
              n_a=int(a.size), n_b=int(b.size))


def _two_sided_p(t: float, df: float) -> float:
  """``2 * P(T_df > |t|) = I_{df/(df+t^2)}(df/2, 1/2)`` (regularized beta)."""
  from scipy import special  # pylint: disable=g-import-not-at-top
  return float(special.betainc(df / 2.0, 0.5, df / (df + t * t)))


def ranks(values: Sequence[float]) -> np.ndarray:
  """1-based ranks of ``values``; tied values share their average rank.

  Example: ``ranks([10, 20, 20, 5])`` -> ``[2, 3.5, 3.5, 1]``.
  """
  v = np.asarray(values, np.float64)
  order = np.argsort(v, kind="stable")
  out = np.empty(v.size, np.float64)
  i = 0
  while i < v.size:
    j = i  # [i, j] is the run of values equal to v[order[i]]
    while j + 1 < v.size and v[order[j + 1]] == v[order[i]]:
      j += 1
    out[order[i:j + 1]] = (i + j) / 2.0 + 1.0
    i = j + 1
  return out


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
  """Spearman's rank correlation of the pairs ``(x[i], y[i])``.

  With ``r = ranks(x)`` and ``s = ranks(y)`` (average ranks for ties)::

      rho = sum((r - mean(r)) * (s - mean(s)))
            / sqrt(sum((r - mean(r))^2) * sum((s - mean(s))^2))

  i.e. the Pearson correlation of the rank vectors (without ties equal to
  ``1 - 6 sum(d^2) / (n (n^2 - 1))``, ``d = r - s``). Pairs with a None
  on either side are dropped. Returns None for fewer than 3 pairs (two
  points are always perfectly rank-correlated) or when either side is
  constant (the correlation is undefined).

  Raises:
    ValueError: ``x`` and ``y`` of different lengths.
  """
  if len(x) != len(y):
    raise ValueError(f"spearman needs paired values, got {len(x)} x and "
                     f"{len(y)} y. Fix: pass one y per x (None where "
                     "missing).")
  pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
  if len(pairs) < 3:
    return None
  r = ranks([a for a, _ in pairs])
  s = ranks([b for _, b in pairs])
  r, s = r - r.mean(), s - s.mean()
  denom = math.sqrt(float(np.sum(r * r)) * float(np.sum(s * s)))
  if denom == 0:
    return None
  return float(np.sum(r * s)) / denom
