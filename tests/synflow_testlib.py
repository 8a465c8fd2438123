"""Exact iterative SynFlow selection shared by the float64 reference tests
(tests/test_synflow_exact.py, tests/test_synflow_mobilenet.py)."""

import numpy as np


def keep_top(scores, order, kept):
  """0/1 masks keeping the ``kept`` largest scores (ties: first position)."""
  cat = np.concatenate([scores[n].ravel() for n in order])
  flat = np.zeros(cat.size)
  flat[np.argsort(-cat, kind="stable")[:kept]] = 1
  out, i = {}, 0
  for n in order:
    out[n] = flat[i:i + scores[n].size].reshape(scores[n].shape)
    i += scores[n].size
  return out


def iterative_masks(score_fn, order, total, sparsity, rounds):
  """Masks of iterative SynFlow with the exponential schedule: round ``r`` of
  ``rounds`` keeps ``(1 - sparsity)^(r / rounds)`` of ``total`` weights,
  ranked by ``score_fn(mask)`` (None in round 1), dead weights last."""
  mask = None
  for r in range(1, rounds + 1):
    d = (1 - sparsity) ** (r / rounds) if r < rounds else 1 - sparsity
    s = score_fn(mask)
    if mask is not None:
      s = {n: np.where(mask[n] > 0, s[n], -np.inf) for n in s}
    mask = keep_top(s, order, int(round(d * total)))
  return mask
