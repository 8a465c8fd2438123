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
from typing import Dict

import numpy as np

from sbp_tf.pruning import checks, schedule, state, steps
from sbp_tf.pruning import kit as kit_lib
from sbp_tf.pruning import rounds as rounds_lib
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
      last round's scores; for data-driven methods ``loss`` (which loss
      each output got) and ``from_logits`` (output name -> the flag used,
      None for losses without one).
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


def prune(model, method, sparsity, data=None, *, loss=None, loss_weights=None,
          scope="global", num_batches=1, rescale=False, rounds=None, seed=None,
          keep_first=False, keep_last=False, on_collapse="warn",
          strategy=None, scoring_mode="training", count_rule="round",
          **method_options) -> PruneResult:
  """Prunes ``model`` in place at initialization.

  Keeps exactly ``round((1 - sparsity) * N)`` of the ``N`` prunable weights
  (global scope) ranked by the method's score, ties broken by position.

  Args:
    model: a built tf.keras Model (Sequential, functional, nested).
    method: registered name (see :func:`methods`), or a Method instance.
    sparsity: fraction of prunable weights removed, in ``[0, 1)``.
    data: ``(x, y)`` arrays (one batch) or a Dataset of ``(x, y)`` batches;
      required by data-driven methods (sbp/snip, grasp). ``x`` and ``y``
      may be nested (tuples, dicts), as ``fit`` takes them.
    loss: loss for the saliency: a Keras loss (object or name), a dict (by
      output name) or list of them per output, or a callable
      ``loss(y_true, y_pred)`` over the output structure. Default: sparse
      CE on the single output, ``from_logits=False`` where it ends in a
      softmax. The saliency is ``L = sum_o w_o * mean_batch l_o``.
    loss_weights: ``w_o`` per output (dict by name or list; default 1).
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
    scoring_mode: ``'training'`` (the default: batch norm normalizes by the
      scoring batch's statistics, dropout active) or ``'inference'`` (moving
      statistics, dropout off; the reference implementation's default) for
      the data-driven methods (sbp/snip, grasp, obd).
    count_rule: weights kept per round: ``'round'`` (``round(d * N)``, the
      default) or ``'floor_pruned'`` (``N - int((1 - d) * N)``, the
      reference implementation's). Both conventions: :mod:`conventions`
      and docs/pruning.md.
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
      on_collapse, strategy, loss, method_options, loss_weights=loss_weights,
      scoring_mode=scoring_mode, count_rule=count_rule)
  return compose(kit_lib.tf_keras(), model, m, targets, mode, sparsity,
                 scope=scope, rounds=rounds, keep_first=keep_first,
                 keep_last=keep_last, on_collapse=on_collapse,
                 where=f"prune({m.name!r})", count_rule=count_rule,
                 fields=dict(data=data, loss=loss, loss_weights=loss_weights,
                             num_batches=num_batches, seed=seed,
                             strategy=strategy, scoring_mode=scoring_mode))


def compose(kit, model, m, targets, mode, sparsity, *, scope, rounds,
            keep_first, keep_last, on_collapse, where, fields,
            count_rule="round") -> PruneResult:
  """The composition behind both paths' ``prune()``, on checked arguments.

  ``rounds`` rounds of score (``kit``'s context) -> select at the
  exponential schedule's densities, pruned weights zeroed between rounds;
  then every variable scoring touched is restored, the masks are diagnosed
  (collapse, connectivity, critical sparsity; policy ``on_collapse``),
  applied (and rescaled with ``mode``) and reported; the model is left
  unchanged if anything raises. ``fields`` are the :class:`ScoreContext`
  fields (data, loss, seed, scoring_mode, ...); ``where`` names the call in
  warnings; ``count_rule`` is the kept count per round
  (:func:`threshold.kept_count`).
  """
  rounds = rounds or m.default_rounds
  dense = rounds_lib.dense_keys([t.key for t in targets], keep_first,
                                keep_last)
  rounds_lib.check_dense_budget(targets, dense, scope, sparsity, count_rule)
  snap = state.snapshot(model)
  try:
    scores, masks = rounds_lib.iterate(
        lambda r, alive: steps.score_with(
            kit, m, model, targets, round_index=r, masks=alive, **fields),
        lambda masks: _zero_pruned(targets, masks),
        schedule.exponential(1.0 - float(sparsity), rounds), scope, dense,
        count_rule=count_rule)
    state.restore(snap)  # undo scoring side effects (BN stats, rounds)
    diag = steps.diagnose(model, masks, scores, dense, kit=kit)
    if m.needs_data:  # which loss each output got (the cached plan)
      plan = kit.score_context(model=model, targets=targets, kit=kit,
                               **fields).loss_plan()
      diag.update(loss=plan.description, from_logits=plan.from_logits)
    rounds_lib.check_collapse(diag, where, sparsity, on_collapse,
                              rounds=rounds, scope=scope)
    factors = steps.apply(model, masks, rescale=mode or False, kit=kit)
  except BaseException:
    state.restore(snap)
    raise
  _log.info("pruned %s with %s: density %.4f (%d/%d kept)", model.name,
            m.name, masks.density(), masks.kept(), masks.size())
  report = masks.report(model, kit=kit)
  report.warn_not_pruned(where)
  return PruneResult(masks=masks, report=report, scores=scores,
                     method=m.name, sparsity=float(sparsity), rounds=rounds,
                     diagnostics=diag, rescale_factors=factors)


def _zero_pruned(targets, masks) -> None:
  """``W <- W * mask`` in place, so the next round scores the pruned net."""
  for t in targets:
    w = t.variable.numpy()
    state.assign(t.variable, w * masks[t.key].astype(w.dtype))
