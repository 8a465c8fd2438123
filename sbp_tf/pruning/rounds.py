"""The framework-free parts of a prune: checked scores, the rounds of the
exponential schedule, and the collapse policy.

Shared by the tf_keras path (:mod:`sbp_tf.pruning.prune`) and the Keras 3
path (:mod:`sbp_tf.keras3.prune`); each passes its own way to score a
round and to zero pruned weights.

Usage::

    scores, masks = iterate(lambda r, alive: checked(m, m.score(ctx), targets),
                            zero_pruned, schedule.exponential(0.1, 3))
"""

from typing import (Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)
import warnings

import numpy as np

from sbp_tf.pruning import causes as causes_lib
from sbp_tf.pruning import masks as masks_lib
from sbp_tf.pruning import threshold


class Scores(dict):
  """key -> float64 score array in the method's own convention.

  Attributes:
    keep: ``'largest'`` (high scores kept) or ``'smallest'`` (GraSP).
    method: the name of the method that scored.
  """

  def __init__(self, values: Mapping[str, np.ndarray], keep: str = "largest",
               method: Optional[str] = None):
    if keep not in ("largest", "smallest"):
      raise ValueError(f"keep={keep!r} must be 'largest' or 'smallest'.")
    super().__init__(values)
    self.keep, self.method = keep, method

  def importance(self) -> Dict[str, np.ndarray]:
    """key -> importance, larger = kept first (``-score`` if ``keep`` is
    ``'smallest'``)."""
    if self.keep == "largest":
      return dict(self)
    return {k: -v for k, v in self.items()}


def checked(m, raw, targets) -> Scores:
  """``raw`` (what ``m.score`` returned) as :class:`Scores`: one finite
  float64 array of the kernel's shape per target.

  Raises:
    TypeError / ValueError: naming the method, the key and the fix.
  """
  if not isinstance(raw, Mapping):
    raise TypeError(f"Method {m.name!r}.score must return a dict key -> "
                    "array.")
  out = {}
  for t in targets:
    if t.key not in raw:
      raise ValueError(f"Method {m.name!r} returned no score for {t.key!r}. "
                       "Fix: score every ctx.targets key.")
    s = np.asarray(raw[t.key], np.float64)
    if s.shape != tuple(t.variable.shape):
      raise ValueError(f"Method {m.name!r} score for {t.key!r} has shape "
                       f"{s.shape}, the weight {tuple(t.variable.shape)}.")
    if not np.all(np.isfinite(s)):
      raise ValueError(
          f"Method {m.name!r} gave NaN/inf scores for {t.key!r}. Fix: check "
          "the data and the initialization for non-finite values (e.g. "
          "normalize inputs, use a finite init).")
    out[t.key] = s
  return Scores(out, keep=m.keep, method=m.name)


def select_density(scores, density: float, *, scope="global", dense=(),
                   alive=None, count_rule: str = "round") -> masks_lib.Masks:
  """Masks keeping the top ``round(density * N)`` (see ``steps.select``;
  ``count_rule``: :func:`threshold.kept_count`)."""
  imp = scores.importance() if isinstance(scores, Scores) else scores
  return masks_lib.Masks(threshold.select(imp, density, scope, dense,
                                          alive=alive, count_rule=count_rule))


def iterate(score_round: Callable, zero_pruned: Callable,
            densities: Sequence[float], scope: str = "global",
            dense: Iterable[str] = (), count_rule: str = "round"
            ) -> Tuple[Scores, masks_lib.Masks]:
  """Scores and selects once per density of the schedule.

  ``score_round(r, alive)`` scores round ``r`` given the masks alive so far
  (None in round 0); between rounds ``zero_pruned(masks)`` zeroes the pruned
  weights, so the next round scores the pruned network (weights once pruned
  are never revived). Each round keeps :func:`threshold.kept_count` weights
  under ``count_rule``. Returns the last round's scores and masks.
  """
  masks, scores = None, None
  for r, d in enumerate(densities):
    scores = score_round(r, masks)
    masks = select_density(scores, d, scope=scope, dense=dense, alive=masks,
                           count_rule=count_rule)
    if r + 1 < len(densities):
      zero_pruned(masks)
  return scores, masks


def dense_keys(keys: Sequence[str], keep_first: bool, keep_last: bool):
  """The keys kept dense by ``keep_first`` / ``keep_last``."""
  return {keys[i] for i, on in ((0, keep_first), (-1, keep_last)) if on}


def check_dense_budget(targets, dense, scope, sparsity,
                       count_rule: str = "round") -> None:
  """keep_first/keep_last must fit in the global budget."""
  density = 1.0 - float(sparsity)
  kept = threshold.kept_count
  n_total = sum(int(np.prod(t.variable.shape)) for t in targets)
  n_dense = sum(int(np.prod(t.variable.shape)) for t in targets
                if t.key in dense)
  if scope == "global" and kept(n_total, density, count_rule) < n_dense:
    raise ValueError(
        f"sparsity={sparsity} keeps {kept(n_total, density, count_rule)} "
        f"weights but keep_first/keep_last alone keep {n_dense}. Fix: lower "
        "the sparsity or drop keep_first/keep_last.")


def _collapse_problem(diag) -> str:
  collapsed = diag["collapsed"]
  causes = diag.get("collapse_causes") or {}
  if not diag["connected"] or not causes:
    return f"fully pruned layer(s): {', '.join(collapsed)}"
  groups = {}
  for key in collapsed:
    groups.setdefault(causes.get(key, "skip"), []).append(key)
  return "fully pruned layer(s), the outputs staying connected: " + "; ".join(
      f"{', '.join(keys)} ({causes_lib.DESCRIPTIONS[cause]})"
      for cause, keys in groups.items())


def _collapse_fixes(diag, sparsity, rounds, scope) -> List[str]:
  """Only the options that can help: a lower sparsity (to this score's
  critical sparsity where it is below the asked one), keep_first/keep_last
  where the first or last layer collapsed, scope='layerwise' where a middle
  layer did, more rounds where a one-shot prune emptied a layer."""
  fixes = []
  crit = diag.get("critical_sparsity")
  collapsed = diag["collapsed"]
  if crit is not None and float(sparsity) > crit:
    fixes.append(f"lower the sparsity to at most {crit:.4f} (this score's "
                 "critical sparsity)")
  elif not collapsed:  # paths cut before any layer is emptied
    fixes.append("a lower sparsity (paths are cut before any layer is "
                 "emptied)")
  edges = diag.get("edge_layers") or []
  if collapsed and any(k in edges for k in collapsed):
    fixes.append("keep_first/keep_last (keep the first/last layer dense)")
  if any(k not in edges for k in collapsed) and scope != "layerwise":
    fixes.append("scope='layerwise' (every layer keeps the same fraction)")
  if collapsed and rounds in (None, 1):
    fixes.append("rounds>1 (iterative pruning spreads the cut)")
  return fixes


def check_collapse(diag, where: str, sparsity, on_collapse, rounds=None,
                   scope=None) -> None:
  """Warns (or raises, or ignores) on fully pruned layers, kernels whose
  kept weights are on no input-output path (``dead``) or a disconnected
  network; names the cause of each collapse where the outputs stay
  connected (a Bidirectional half, attention query/key, a gate, a branch
  behind a skip: ``diag["collapse_causes"]``) and suggests only the options
  that can help (:func:`_collapse_fixes`); ``where`` names the call, e.g.
  ``"prune('sbp')"``."""
  problems = []
  if diag["collapsed"]:
    problems.append(_collapse_problem(diag))
  if diag.get("dead") and diag["connected"]:  # else every kernel is dead
    problems.append("kept weights on no input-output path (a branch cut "
                    f"elsewhere) in: {', '.join(diag['dead'])}")
  if diag["connected"] is False:
    problems.append(f"outputs disconnected from the input (reachable "
                    f"fraction {diag['reachable_fraction']:.3f})")
  if not problems or on_collapse == "ignore":
    return
  crit = diag.get("critical_sparsity")
  msg = (f"{where[:-1]}, sparsity={sparsity}): " + "; ".join(problems) + "."
         + (f" The critical sparsity of this score is {crit:.4f}."
            if crit is not None else ""))
  fixes = _collapse_fixes(diag, sparsity, rounds, scope)
  if fixes:
    msg += " Fix: " + ", or ".join(fixes) + "."
  if on_collapse == "error":
    raise ValueError(msg)
  warnings.warn(msg)
