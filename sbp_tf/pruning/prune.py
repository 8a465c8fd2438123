"""``prune()``: prune a model at initialization by a saliency score.

For ``k = rounds`` rounds with densities ``d_r = (1 - s)^(r / k)``: score the
current (masked) model, keep the top ``round(d_r * N)`` weights (global) or
``round(d_r * n_l)`` per layer (layerwise), zero the rest. Then restore every
variable that scoring touched (BN statistics, SynFlow's ``|W|``) bit-exactly,
zero the pruned kernels, and optionally apply the rescaling trick.

It is the composition of the public steps of :mod:`steps`
(``score`` -> ``select`` per round, then ``diagnose`` and ``apply``).

Usage::

    result = prune(model, "sbp", 0.9, data=(x, y), rescale=True)
    print(result.report.to_markdown())
"""

import dataclasses
import logging
import warnings
from typing import Dict

import numpy as np

from sbp_tf.pruning import checks, schedule, state, steps, threshold
from sbp_tf.pruning.masks import Masks, Report

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class PruneResult:
  """What :func:`prune` did.

  Attributes:
    masks: the :class:`Masks` (1 = kept).
    report: per-layer :class:`Report` (list of row dicts + writers).
    scores: key -> scores of the last round (the method's sign convention).
    method: method name; sparsity: requested sparsity; rounds: rounds run.
    diagnostics: ``collapsed`` (keys), ``connected`` / ``reachable_fraction``
      (None if the input shape is not fixed), ``critical_sparsity`` of the
      last round's scores.
    rescale_factors: key -> rescaling factors (empty without rescale).
  """
  masks: Masks
  report: Report
  scores: Dict[str, np.ndarray]
  method: str
  sparsity: float
  rounds: int
  diagnostics: Dict
  rescale_factors: Dict[str, np.ndarray] = dataclasses.field(
      default_factory=dict)


def prune(model, method, sparsity, data=None, *, loss=None, scope="global",
          num_batches=1, rescale=False, rounds=None, seed=None,
          keep_first=False, keep_last=False, on_collapse="warn",
          strategy=None, **method_options) -> PruneResult:
  """Prunes ``model`` in place at initialization.

  Keeps exactly ``round((1 - sparsity) * N)`` of the ``N`` prunable weights
  (global scope) ranked by the method's score, ties broken by position.

  Args:
    model: a built tf.keras Model (Sequential, functional, nested).
    method: registered name (see :func:`methods`), or a Method instance.
    sparsity: fraction of prunable weights removed, in ``[0, 1)``.
    data: ``(x, y)`` arrays (one batch) or a Dataset of ``(x, y)`` batches;
      required by data-driven methods (sbp/snip, grasp).
    loss: loss for the saliency (default sparse CE on logits).
    scope: ``'global'`` (one threshold, the paper) or ``'layerwise'``.
    num_batches: batches whose gradients are summed.
    rescale: False, True (= 'offset', paper Prop. 3) or 'channel'/'unit'.
    rounds: rounds of the exponential schedule; None = the method's default
      (1, synflow 100).
    seed: seed of the random method (same seed + data -> same masks).
    keep_first / keep_last: keep the first / last prunable layer dense.
    on_collapse: 'warn' | 'error' | 'ignore' when a layer is fully pruned or
      the outputs are disconnected from the input.
    strategy: a tf.distribute strategy the model was built under; scores use
      the global batch, giving the single-device masks.
    **method_options: the method's own parameters (its constructor
      arguments, see :func:`method_options`), e.g. ``temperature=100.0``
      for grasp or ``precision='float32'`` for synflow.

  Returns:
    :class:`PruneResult`.

  Raises:
    ValueError / TypeError: bad arguments, NaN/inf scores, collapse with
      ``on_collapse='error'``; the model is then left unchanged.

  Example::

    result = prune(model, "synflow", 0.99)
    result.masks.save("masks.npz")
  """
  targets, m, mode = checks.validate(
      model, method, sparsity, data, scope, num_batches, rescale, rounds,
      on_collapse, strategy, loss, method_options)
  rounds = rounds or m.default_rounds
  keys = [t.key for t in targets]
  dense = {keys[i] for i, on in ((0, keep_first), (-1, keep_last)) if on}
  _check_dense_budget(targets, dense, scope, sparsity)
  snap = state.snapshot(model)
  try:
    scores, masks = _rounds(model, m, targets, schedule.exponential(
        1.0 - float(sparsity), rounds), scope, dense, dict(
            data=data, loss=loss, num_batches=num_batches, seed=seed,
            strategy=strategy))
    state.restore(snap)  # undo scoring side effects (BN stats, rounds)
    diag = steps.diagnose(model, masks, scores, dense)
    _check_collapse(diag, m.name, sparsity, on_collapse)
    factors = steps.apply(model, masks, rescale=mode or False)
  except BaseException:
    state.restore(snap)
    raise
  _log.info("pruned %s with %s: density %.4f (%d/%d kept)", model.name,
            m.name, masks.density(), masks.kept(), masks.size())
  return PruneResult(masks=masks, report=masks.report(model), scores=scores,
                     method=m.name, sparsity=float(sparsity), rounds=rounds,
                     diagnostics=diag, rescale_factors=factors)


def _check_dense_budget(targets, dense, scope, sparsity) -> None:
  """keep_first/keep_last must fit in the global budget."""
  density = 1.0 - float(sparsity)
  n_total = sum(int(np.prod(t.variable.shape)) for t in targets)
  n_dense = sum(int(np.prod(t.variable.shape)) for t in targets
                if t.key in dense)
  if scope == "global" and threshold.kept_count(n_total, density) < n_dense:
    raise ValueError(
        f"sparsity={sparsity} keeps {threshold.kept_count(n_total, density)} "
        f"weights but keep_first/keep_last alone keep {n_dense}. Fix: lower "
        "the sparsity or drop keep_first/keep_last.")


def _rounds(model, m, targets, densities, scope, dense, ctx_fields):
  """Scores and selects once per density of the schedule; between rounds
  the pruned weights are zeroed so the next round scores the pruned net.
  Returns the last round's scores and masks."""
  masks, scores = None, None
  for r, d in enumerate(densities):
    scores = steps._score_with(m, model, targets, round_index=r,  # pylint: disable=protected-access
                               masks=masks, **ctx_fields)
    masks = steps.select_density(scores, d, scope=scope, dense=dense,
                                 alive=masks)
    if r + 1 < len(densities):
      for t in targets:
        t.variable.assign(t.variable.numpy() * masks[t.key].astype(
            t.variable.dtype.as_numpy_dtype))
  return scores, masks


def _check_collapse(diag, name, sparsity, on_collapse) -> None:
  """Warns (or raises, or ignores) on fully pruned layers or a disconnected
  network, quoting the score's critical sparsity."""
  problems = []
  if diag["collapsed"]:
    problems.append(f"fully pruned layer(s): {', '.join(diag['collapsed'])}")
  if diag["connected"] is False:
    problems.append(f"outputs disconnected from the input (reachable "
                    f"fraction {diag['reachable_fraction']:.3f})")
  if not problems or on_collapse == "ignore":
    return
  msg = (f"prune({name!r}, sparsity={sparsity}): " + "; ".join(problems)
         + f". The critical sparsity of this score is "
         f"{diag['critical_sparsity']:.4f}. Fix: lower the sparsity, use "
         "keep_first/keep_last, or rounds>1.")
  if on_collapse == "error":
    raise ValueError(msg)
  warnings.warn(msg)
