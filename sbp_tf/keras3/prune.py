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

import functools
import math
import numbers

import numpy as np

from sbp_tf.keras3._runtime import check_model, keras
from sbp_tf.keras3.kit import KERAS3
from sbp_tf.keras3.targets import prunable_targets
from sbp_tf.pruning import checks, steps

from sbp_tf.pruning import scores as methods_lib
from sbp_tf.pruning.masks import Masks, Report  # noqa: F401
from sbp_tf.pruning.prune import PruneResult, compose  # one for both paths
from sbp_tf.pruning.rescale import normalize_mode

Scores = steps.Scores
SCOPES, ON_COLLAPSE = steps.SCOPES, steps.ON_COLLAPSE
methods = methods_lib.methods

# The steps of sbp_tf.pruning with the Keras 3 hooks: one implementation.
resolve_method = steps.resolve_method
score = functools.partial(steps.score, kit=KERAS3)
select = steps.select  # framework-free: the same function on both paths
apply = functools.partial(steps.apply, kit=KERAS3)
diagnose = functools.partial(steps.diagnose, kit=KERAS3)


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
  mode = normalize_mode(rescale)
  return compose(KERAS3, model, m, targets, mode, sparsity, scope=scope,
                 rounds=rounds, keep_first=keep_first, keep_last=keep_last,
                 on_collapse=on_collapse, where=f"keras3.prune({m.name!r})",
                 fields=dict(data=data, loss=loss, num_batches=num_batches,
                             seed=seed))


__all__ = ["ON_COLLAPSE", "PruneResult", "SCOPES", "Scores", "apply",
           "diagnose", "methods", "prune", "resolve_method", "score",
           "select"]
