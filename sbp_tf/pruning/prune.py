"""``prune()``: prune a model at initialization by a saliency score.

For ``k = rounds`` rounds with densities ``d_r = (1 - s)^(r / k)``: score the
current (masked) model, keep the top ``round(d_r * N)`` weights (global) or
``round(d_r * n_l)`` per layer (layerwise), zero the rest. Then restore every
variable that scoring touched (BN statistics, SynFlow's ``|W|``) bit-exactly,
zero the pruned kernels, and optionally apply the rescaling trick.

Usage::

    result = prune(model, "sbp", 0.9, data=(x, y), rescale=True)
    print(result.report.to_markdown())
"""

import dataclasses
import logging
import math
import numbers
import warnings
from typing import Dict

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import keras, tf
from sbp_tf.pruning import diagnostics, rescale as rescale_lib
from sbp_tf.pruning import scores as methods_lib
from sbp_tf.pruning import saliency, schedule, state, threshold
from sbp_tf.pruning.masks import Masks, Report
from sbp_tf.pruning.targets import prunable_targets

_log = logging.getLogger(__name__)

ON_COLLAPSE = ("warn", "error", "ignore")
SCOPES = ("global", "layerwise")


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


def _check_int(name, v, lo=1):
  if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
    raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}. Fix: pass "
                     f"e.g. {name}={lo}.")


def _resolve_method(method):
  if isinstance(method, methods_lib.Method):
    return method
  if isinstance(method, type) and issubclass(method, methods_lib.Method):
    return method()
  return methods_lib.get(method)


def _static_shape(model, attr):
  try:
    shape = getattr(model, attr)
  except (AttributeError, ValueError, RuntimeError):  # subclassed / unbuilt
    return None
  if isinstance(shape, list) or not isinstance(shape, tuple):
    return None  # several inputs / outputs: not checked
  return shape


def _check_data(model, data, loss, num_batches):
  """Checks the first batch against the model before anything is traced.

  Raises ValueError for an unbatched Dataset, images of the wrong shape and
  (default loss only) one-hot or out-of-range labels; warns for float labels,
  uint8 0-255 images and ``num_batches`` beyond the data.
  """
  if isinstance(data, tf.data.Dataset):
    n = int(data.cardinality())
    if n > 0 and num_batches > n:  # n == 0: the empty error below
      warnings.warn(f"num_batches={num_batches} but the dataset holds only {n} "
                    f"batch(es); the saliency uses {n}. Fix: pass "
                    f"num_batches<={n} or more data.")
    first = next(iter(data.take(1)), None)
    if first is None:
      raise ValueError("The dataset is empty. Fix: pass a dataset of (x, y) "
                       "batches.")
    x, y = first[0], first[1]
  else:
    x, y = data[0], data[1]
    if num_batches > 1:
      warnings.warn(f"num_batches={num_batches} but data=(x, y) is one batch; "
                    "the saliency uses 1. Fix: pass a batched tf.data.Dataset "
                    "for several batches.")
  in_shape = _static_shape(model, "input_shape")
  xs = tf.nest.flatten(x)
  if in_shape is not None and len(xs) == 1:
    got = tuple(np.shape(xs[0]))
    want = tuple(in_shape[1:])
    fits = lambda a, b: len(a) == len(b) and all(
        w is None or int(g) == int(w) for g, w in zip(a, b))
    if fits(got, want) and isinstance(data, tf.data.Dataset):
      raise ValueError(
          f"The dataset yields single examples of shape {got}, not batches "
          f"(the model expects {in_shape}). Fix: batch it, e.g. "
          "data=ds.batch(128).")
    if not fits(got[1:], want):
      raise ValueError(
          f"The data's images have shape {got[1:]} (batch {got}) but the model "
          f"expects {want} (input_shape {in_shape}). Fix: reshape/resize the "
          "inputs or build the model for this input shape.")
  if len(xs) == 1:
    xv = np.asarray(xs[0])
    if xv.dtype == np.uint8 and xv.size and int(xv.max()) > 1:
      warnings.warn("The images are uint8 in 0-255; the saliency sees them "
                    "unscaled. Fix: pass float images, e.g. x / 255.0.")
  if loss is not None:
    return  # a custom loss: labels are the user's business
  yv = np.asarray(y)
  out_shape = _static_shape(model, "output_shape")
  classes = (int(out_shape[-1]) if out_shape is not None and len(out_shape) > 1
             and out_shape[-1] is not None else None)
  if yv.ndim >= 2 and yv.shape[-1] > 1:
    raise ValueError(
        f"The labels have shape {yv.shape} (one-hot?) but the default loss is "
        "sparse categorical cross-entropy on integer labels. Fix: pass "
        "integer labels (np.argmax(y, -1)) or loss=CategoricalCrossentropy("
        "from_logits=True).")
  if yv.size == 0:
    return
  if np.issubdtype(yv.dtype, np.floating):
    if not np.all(np.isfinite(yv)) or np.any(yv != np.round(yv)):
      raise ValueError(
          "The labels are floats that are not class indices (non-integer "
          "values) while the default loss expects integer labels. Fix: pass "
          "integer class labels, or a loss= for your targets.")
    warnings.warn("The labels are floats; the default loss casts them to "
                  "integer class indices. Fix: pass integer labels "
                  "(y.astype('int64')).")
  elif not np.issubdtype(yv.dtype, np.integer):
    return
  lo, hi = int(np.min(yv)), int(np.max(yv))
  if lo < 0 or (classes is not None and hi >= classes):
    raise ValueError(
        f"Labels out of range: found {lo}..{hi}, the model has "
        f"{classes} output classes (labels must be in [0, {classes})). Fix: "
        "map the labels to 0..num_classes-1 or build the model with more "
        "classes.")


def _validate(model, method, sparsity, data, scope, num_batches, rescale,
              rounds, on_collapse, strategy, loss=None):
  compat.check_not_keras3(model, "sbp_tf.pruning.prune")
  if not isinstance(model, keras.Model):
    raise TypeError(f"model must be a tf.keras (tf_keras) Model, got "
                    f"{type(model).__name__}. Fix: pass a built keras.Model.")
  targets = prunable_targets(model)  # raises if not built
  if not targets:
    raise ValueError(f"Model {model.name!r} has no prunable weights (Dense/Conv "
                     "kernels). Fix: prune a model with Dense or Conv layers.")
  m = _resolve_method(method)
  if (isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real)
      or not math.isfinite(sparsity) or not 0.0 <= sparsity < 1.0):
    raise ValueError(f"sparsity must be in [0, 1) (fraction of weights "
                     f"removed), got {sparsity!r}. Fix: pass e.g. 0.9.")
  if scope not in SCOPES:
    raise ValueError(f"scope={scope!r} is not known. Fix: use one of {SCOPES}.")
  _check_int("num_batches", num_batches)
  if rounds is not None:
    _check_int("rounds", rounds)
  if on_collapse not in ON_COLLAPSE:
    raise ValueError(f"on_collapse={on_collapse!r} is not valid. Fix: use one "
                     f"of {ON_COLLAPSE}.")
  mode = rescale_lib.normalize_mode(rescale)
  if m.needs_data:
    saliency.as_dataset(data)  # raises on None / label-less / empty tuple
    _check_data(model, data, loss, num_batches)
  if strategy is not None:
    bad = [t.key for t in targets
           if not strategy.extended.variable_created_in_scope(t.variable)]
    if bad:
      raise ValueError(f"Weight {bad[0]!r} was not created under the given "
                       "strategy. Fix: build the model inside strategy.scope().")
  return targets, m, mode


def prune(model, method, sparsity, data=None, *, loss=None, scope="global",
          num_batches=1, rescale=False, rounds=None, seed=None,
          keep_first=False, keep_last=False, on_collapse="warn",
          strategy=None) -> PruneResult:
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

  Returns:
    :class:`PruneResult`.

  Raises:
    ValueError / TypeError: bad arguments, NaN/inf scores, collapse with
      ``on_collapse='error'``; the model is then left unchanged.

  Example::

    result = prune(model, "synflow", 0.99)
    result.masks.save("masks.npz")
  """
  targets, m, mode = _validate(model, method, sparsity, data, scope,
                               num_batches, rescale, rounds, on_collapse,
                               strategy, loss)
  rounds = rounds or m.default_rounds
  keys = [t.key for t in targets]
  dense = set()
  if keep_first:
    dense.add(keys[0])
  if keep_last:
    dense.add(keys[-1])
  density = 1.0 - float(sparsity)
  n_total = sum(int(np.prod(t.variable.shape)) for t in targets)
  n_dense = sum(int(np.prod(t.variable.shape)) for t in targets
                if t.key in dense)
  if scope == "global" and threshold.kept_count(n_total, density) < n_dense:
    raise ValueError(
        f"sparsity={sparsity} keeps {threshold.kept_count(n_total, density)} "
        f"weights but keep_first/keep_last alone keep {n_dense}. Fix: lower "
        "the sparsity or drop keep_first/keep_last.")

  snap = state.snapshot(model)
  try:
    masks, scores = None, None
    densities = schedule.exponential(density, rounds)
    for r, d in enumerate(densities):
      ctx = methods_lib.ScoreContext(
          model=model, targets=targets, data=data, loss=loss,
          num_batches=num_batches, seed=seed, round_index=r, masks=masks,
          strategy=strategy)
      scores = _checked(m, m.score(ctx), targets)
      imp = scores if m.keep == "largest" else {
          k: -v for k, v in scores.items()}
      masks = threshold.select(imp, d, scope, dense, alive=masks)
      if r + 1 < len(densities):
        for t in targets:  # the next round scores the pruned network
          t.variable.assign(t.variable.numpy() * masks[t.key].astype(
              t.variable.dtype.as_numpy_dtype))
    state.restore(snap)  # undo scoring side effects (BN stats, rounds)

    masks = Masks({k: masks[k] for k in keys})
    collapsed = masks.collapsed()
    try:
      conn = diagnostics.connectivity(model, masks)
    except (ValueError, AttributeError):  # no fixed input shape
      conn = None
    crit = diagnostics.critical_sparsity(scores, m.keep, dense)
    problems = []
    if collapsed:
      problems.append(f"fully pruned layer(s): {', '.join(collapsed)}")
    if conn is not None and not conn.connected:
      problems.append(f"outputs disconnected from the input (reachable "
                      f"fraction {conn.reachable_fraction:.3f})")
    if problems and on_collapse != "ignore":
      msg = (f"prune({m.name!r}, sparsity={sparsity}): " + "; ".join(problems)
             + f". The critical sparsity of this score is {crit.sparsity:.4f}."
             " Fix: lower the sparsity, use keep_first/keep_last, or rounds>1.")
      if on_collapse == "error":
        raise ValueError(msg)
      warnings.warn(msg)

    masks.apply(model)
    factors = rescale_lib.rescale(
        model, masks, mode, reference={k: v for k, v in _by_key(snap, targets)}
    ) if mode else {}
  except BaseException:
    state.restore(snap)
    raise
  report = masks.report(model)
  _log.info("pruned %s with %s: density %.4f (%d/%d kept)", model.name,
            m.name, masks.density(), masks.kept(), masks.size())
  return PruneResult(
      masks=masks, report=report,
      scores={k: np.asarray(v) for k, v in scores.items()}, method=m.name,
      sparsity=float(sparsity), rounds=rounds,
      diagnostics=dict(
          collapsed=collapsed,
          connected=None if conn is None else conn.connected,
          reachable_fraction=None if conn is None else conn.reachable_fraction,
          critical_sparsity=crit.sparsity,
          critical_layer=crit.bottleneck),
      rescale_factors=factors)


def _by_key(snap, targets):
  values = {id(v): val for v, val in snap}
  for t in targets:
    yield t.key, values[id(t.variable)]


def _checked(m, scores, targets):
  """Scores as float64 arrays of the kernel shapes, all finite."""
  if not isinstance(scores, dict):
    raise TypeError(f"Method {m.name!r}.score must return a dict key -> array.")
  out = {}
  for t in targets:
    if t.key not in scores:
      raise ValueError(f"Method {m.name!r} returned no score for {t.key!r}. "
                       "Fix: score every ctx.targets key.")
    s = np.asarray(scores[t.key], np.float64)
    if s.shape != tuple(t.variable.shape):
      raise ValueError(f"Method {m.name!r} score for {t.key!r} has shape "
                       f"{s.shape}, the weight {tuple(t.variable.shape)}.")
    if not np.all(np.isfinite(s)):
      raise ValueError(
          f"Method {m.name!r} gave NaN/inf scores for {t.key!r}. Fix: check "
          "the data and the initialization for non-finite values (e.g. "
          "normalize inputs, use a finite init).")
    out[t.key] = s
  return out
