"""Pruning at initialization of Keras 3 models: score, select, apply, prune.

The public steps of :mod:`sbp_tf.pruning` (same names, arguments, scores
and selection rule) for a Keras 3 model:

* :func:`score`: ``key -> score`` of every prunable kernel with the shared
  methods of :mod:`sbp_tf.pruning.scores` (sbp/snip ``|W dL/dW|``,
  magnitude ``|W|``, random (seeded numpy), grasp ``-W (H g)`` at
  temperature 200 keeping the smallest, synflow ``|W dR/dW|`` in float64,
  and any method a user registered); gradients by ``tf.GradientTape`` on the
  Keras 3 model (:mod:`sbp_tf.keras3.saliency`);
* :func:`select`: the shared exact top-k (:mod:`sbp_tf.pruning.threshold`),
  keeping ``round((1 - s) N)`` weights, ties to the earlier weight;
* :func:`apply`: ``W <- W * delta``, optionally rescaled ``rho W delta``;
* :func:`prune`: their composition over ``rounds`` rounds of the
  exponential schedule ``d_r = (1 - s)^(r / k)`` (synflow: 100 rounds).

The model is left bit for bit as found apart from the pruned (and rescaled)
kernels: batch-norm statistics and dropout seeds touched by scoring are
restored.

Usage::

    from sbp_tf import keras3
    result = keras3.prune(model, "sbp", 0.9, data=(x, y), seed=0)
    print(result.report.to_markdown())
    scores = keras3.score(model, "grasp", data=(x, y), temperature=200.0)
"""

import logging
import math
import numbers
from typing import Dict, Mapping, Optional

import numpy as np

from sbp_tf.keras3 import diagnostics
from sbp_tf.keras3 import masks as masks_lib
from sbp_tf.keras3 import rescale as rescale_lib
from sbp_tf.keras3 import state, synflow
from sbp_tf.keras3._runtime import check_model, keras
from sbp_tf.keras3.saliency import ScoreContext
from sbp_tf.keras3.targets import prunable_targets
from sbp_tf.pruning import checks, schedule, steps
from sbp_tf.pruning import rounds as rounds_lib
from sbp_tf.pruning import scores as methods_lib
from sbp_tf.pruning.masks import Masks, Report  # noqa: F401
from sbp_tf.pruning.prune import PruneResult  # the same result on both paths

Scores = steps.Scores
SCOPES, ON_COLLAPSE = steps.SCOPES, steps.ON_COLLAPSE
methods = methods_lib.methods
_log = logging.getLogger(__name__)


def resolve_method(method, **options) -> methods_lib.Method:
  """A Method from a name, class or instance; SynFlow runs its Keras 3
  float64 clone (:class:`sbp_tf.keras3.synflow.SynFlow`)."""
  m = steps.resolve_method(method, **options)
  if isinstance(m, methods_lib.SynFlow) and not isinstance(m, synflow.SynFlow):
    m = synflow.SynFlow(precision=m.precision)
  return m


def _score_with(m, model, targets, **ctx_fields) -> Scores:
  """``m.score`` on a Keras 3 :class:`ScoreContext`, checked
  (:func:`sbp_tf.pruning.rounds.checked`)."""
  return rounds_lib.checked(
      m, m.score(ScoreContext(model=model, targets=targets, **ctx_fields)),
      targets)


def score(model, method, data=None, *, loss=None, num_batches: int = 1,
          seed: Optional[int] = None,
          masks: Optional[Mapping[str, np.ndarray]] = None,
          round_index: int = 0, **method_options) -> Scores:
  """Scores every prunable weight of a Keras 3 ``model``; changes nothing.

  Args and result as :func:`sbp_tf.pruning.score` (no ``strategy``).

  Example::

    s = score(model, "grasp", data=(x, y), temperature=100.0)
    s.keep   # 'smallest'
  """
  check_model(model, "keras3.score")
  m = resolve_method(method, **method_options)
  targets = prunable_targets(model)
  snap = state.snapshot(model)
  try:
    return _score_with(m, model, targets, data=data, loss=loss,
                       num_batches=num_batches, seed=seed, masks=masks,
                       round_index=round_index)
  finally:
    state.restore(snap)


select = steps.select  # framework-free: the same function on both paths


def apply(model, masks: Mapping[str, np.ndarray], *, rescale=False,
          reference: Optional[Mapping[str, np.ndarray]] = None
          ) -> Dict[str, np.ndarray]:
  """``W <- W * delta``, then with ``rescale`` ``W <- rho W delta`` (paper
  Prop. 3, see :mod:`sbp_tf.keras3.rescale`); returns the factors ``rho``.

  Raises:
    ValueError: a mask names no weight of ``model`` or has another shape
      (nothing is changed).
  """
  check_model(model, "keras3.apply")
  mode = rescale_lib.normalize_mode(rescale)
  m = masks_lib.validate(model, masks)
  if mode and reference is None:
    reference = {t.key: t.variable.numpy() for t in prunable_targets(model)
                 if t.key in m}
  masks_lib.zero_pruned(model, m)
  return rescale_lib.rescale(model, m, mode, reference) if mode else {}


diagnose = diagnostics.diagnose


def _check_args(model, m, sparsity, data, scope, num_batches, rounds,
                on_collapse, loss):
  """prune()'s argument checks (sbp_tf.pruning.checks' rules)."""
  if (isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real)
      or not math.isfinite(sparsity) or not 0.0 <= sparsity < 1.0):
    raise ValueError(f"sparsity must be in [0, 1) (fraction of weights "
                     f"removed), got {sparsity!r}. Fix: pass e.g. 0.9.")
  if scope not in SCOPES:
    raise ValueError(f"scope={scope!r} is not known. Fix: use one of "
                     f"{SCOPES}.")
  checks.check_int("num_batches", num_batches)
  if rounds is not None:
    checks.check_int("rounds", rounds)
  if on_collapse not in ON_COLLAPSE:
    raise ValueError(f"on_collapse={on_collapse!r} is not valid. Fix: use one "
                     f"of {ON_COLLAPSE}.")
  if m.needs_data:
    if data is None:
      raise ValueError(f"Method {m.name!r} is data-driven but data=None. Fix: "
                       "pass data=(x, y) or a tf.data.Dataset of (x, y) "
                       "batches.")
    x, y = checks.first_batch(data, num_batches)
    _check_batch(model, x, y if loss is None else None)


def _check_batch(model, x, y) -> None:
  """One input: ``x`` is a batch of the model's input shape; ``y`` (default
  loss only): integer class indices in ``[0, classes)``."""
  xs, ins = keras.tree.flatten(x), list(getattr(model, "inputs", None) or [])
  if len(xs) == 1 and len(ins) == 1:
    got, want = tuple(np.shape(xs[0]))[1:], tuple(ins[0].shape[1:])
    if len(got) != len(want) or any(w is not None and int(g) != int(w)
                                     for g, w in zip(got, want)):
      raise ValueError(
          f"The data's inputs have shape {got} per example but the model "
          f"expects {want}. Fix: reshape/resize the inputs, batch a dataset "
          "(ds.batch(128)), or build the model for this input shape.")
  if y is None:
    return
  yv, outs = np.asarray(y), list(getattr(model, "outputs", None) or [])
  classes = int(outs[0].shape[-1]) if len(outs) == 1 else None
  if yv.ndim >= 2 and yv.shape[-1] > 1:
    raise ValueError(f"The labels have shape {yv.shape} (one-hot?) but the "
                     "default loss takes integer class indices. Fix: pass "
                     "np.argmax(y, -1) or loss=keras.losses."
                     "CategoricalCrossentropy(from_logits=True).")
  if yv.size and np.issubdtype(yv.dtype, np.integer) and (
      yv.min() < 0 or (classes is not None and yv.max() >= classes)):
    raise ValueError(f"Labels out of range: found {yv.min()}..{yv.max()}, "
                     f"the model has {classes} output classes. Fix: map the "
                     "labels to 0..num_classes-1.")


def prune(model, method, sparsity, data=None, *, loss=None, scope="global",
          num_batches=1, rescale=False, rounds=None, seed=None,
          keep_first=False, keep_last=False, on_collapse="warn",
          **method_options) -> PruneResult:
  """Prunes a Keras 3 ``model`` in place at initialization.

  Keeps exactly ``round((1 - sparsity) * N)`` of the ``N`` prunable weights
  (global scope) ranked by the method's score, ties broken by position.
  Arguments as :func:`sbp_tf.pruning.prune` (no ``strategy``).

  Returns:
    :class:`PruneResult` (``masks``, ``report``, ``scores``, ...).

  Raises:
    ValueError / TypeError: bad arguments, NaN/inf scores, collapse with
      ``on_collapse='error'``; the model is then left unchanged.

  Example::

    result = prune(model, "synflow", 0.99)
    keras3.mask(model, result.masks)      # keep them in model.fit
  """
  check_model(model, "keras3.prune")
  targets = prunable_targets(model)
  if not targets:
    raise ValueError(f"Model {model.name!r} has no prunable weights (Dense/"
                     "Conv kernels). Fix: prune a model with Dense or Conv "
                     "layers.")
  m = resolve_method(method, **method_options)
  _check_args(model, m, sparsity, data, scope, num_batches, rounds,
              on_collapse, loss)
  mode = rescale_lib.normalize_mode(rescale)
  rounds = rounds or m.default_rounds
  dense = rounds_lib.dense_keys([t.key for t in targets], keep_first,
                                keep_last)
  rounds_lib.check_dense_budget(targets, dense, scope, sparsity)
  fields = dict(data=data, loss=loss, num_batches=num_batches, seed=seed)
  snap = state.snapshot(model)
  try:
    scores, masks = rounds_lib.iterate(
        lambda r, alive: _score_with(m, model, targets, round_index=r,
                                     masks=alive, **fields),
        lambda masks: masks_lib.zero_pruned(model, masks),
        schedule.exponential(1.0 - float(sparsity), rounds), scope, dense)
    state.restore(snap)  # undo scoring side effects (BN stats, rounds)
    diag = diagnose(model, masks, scores, dense)
    rounds_lib.check_collapse(diag, f"keras3.prune({m.name!r})", sparsity,
                              on_collapse,
                              rounds=rounds, scope=scope)
    factors = apply(model, masks, rescale=mode or False)
  except BaseException:
    state.restore(snap)
    raise
  _log.info("pruned %s with %s: density %.4f (%d/%d kept)", model.name,
            m.name, masks.density(), masks.kept(), masks.size())
  return PruneResult(masks=masks, report=masks_lib.report(model, masks),
                     scores=scores, method=m.name, sparsity=float(sparsity),
                     rounds=rounds, diagnostics=diag,
                     rescale_factors=factors)


__all__ = ["ON_COLLAPSE", "PruneResult", "SCOPES", "Scores", "apply",
           "diagnose", "methods", "prune", "resolve_method", "score",
           "select"]
