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

from sbp_tf.keras3.kit import KERAS3
from sbp_tf.pruning import checks, steps
from sbp_tf.pruning import scores as methods_lib
from sbp_tf.pruning.masks import Masks, Report  # noqa: F401
from sbp_tf.pruning.prune import PruneResult, compose  # one for both paths

Scores = steps.Scores
SCOPES, ON_COLLAPSE = steps.SCOPES, steps.ON_COLLAPSE
methods = methods_lib.methods

# The steps of sbp_tf.pruning with the Keras 3 hooks: one implementation.
resolve_method = steps.resolve_method
score = functools.partial(steps.score, kit=KERAS3)
select = steps.select  # framework-free: the same function on both paths
apply = functools.partial(steps.apply, kit=KERAS3)
diagnose = functools.partial(steps.diagnose, kit=KERAS3)


def prune(model, method, sparsity, data=None, *, loss=None, loss_weights=None,
          scope="global", num_batches=1, rescale=False, rounds=None,
          seed=None, keep_first=False, keep_last=False, on_collapse="warn",
          scoring_mode="training", count_rule="round",
          **method_options) -> PruneResult:
  """Prunes a Keras 3 ``model`` in place at initialization.

  Keeps exactly ``round((1 - sparsity) * N)`` of the ``N`` prunable weights
  (global scope) ranked by the method's score, ties broken by position.
  Arguments as :func:`sbp_tf.pruning.prune` (no ``strategy``: one device),
  ``scoring_mode`` and ``count_rule`` included.

  Returns:
    :class:`PruneResult` (``masks``, ``report``, ``scores``, ...).

  Raises:
    ValueError / TypeError: bad arguments, NaN/inf scores, collapse with
      ``on_collapse='error'``; the model is then left unchanged.

  Example::

    result = prune(model, "synflow", 0.99)
    keras3.mask(model, result.masks)      # keep them in model.fit
  """
  targets, m, mode = checks.validate(
      model, method, sparsity, data, scope, num_batches, rescale, rounds,
      on_collapse, None, loss, method_options, loss_weights=loss_weights,
      kit=KERAS3, scoring_mode=scoring_mode, count_rule=count_rule)
  return compose(KERAS3, model, m, targets, mode, sparsity, scope=scope,
                 rounds=rounds, keep_first=keep_first, keep_last=keep_last,
                 on_collapse=on_collapse, where=f"keras3.prune({m.name!r})",
                 count_rule=count_rule,
                 fields=dict(data=data, loss=loss, loss_weights=loss_weights,
                             num_batches=num_batches, seed=seed,
                             scoring_mode=scoring_mode))


__all__ = ["ON_COLLAPSE", "PruneResult", "SCOPES", "Scores", "apply",
           "diagnose", "methods", "prune", "resolve_method", "score",
           "select"]
