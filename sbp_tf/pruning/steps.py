"""Pruning at initialization as three public steps: score, select, apply.

:func:`prune` is their composition (plus iterative rounds, validation and
the collapse check); call the steps yourself to inspect or change what
happens between them::

    from sbp_tf import pruning
    scores = pruning.score(model, "sbp", data=(x, y))      # key -> |W dL/dW|
    masks = pruning.select(scores, 0.9)                    # 90% removed
    pruning.diagnose(model, masks, scores)["connected"]
    pruning.apply(model, masks, rescale=True)              # W <- rho W delta

Sign convention: a :class:`Scores` holds each method's own values (GraSP's
``-W (H g)`` included) with its ``keep`` direction; :meth:`Scores.importance`
turns them into "larger = keep first", which is what :func:`select` ranks.
"""

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from sbp_tf.pruning import causes, conventions, diagnostics
from sbp_tf.pruning import masks as masks_lib
from sbp_tf.pruning import kit as kit_lib
from sbp_tf.pruning import rescale as rescale_lib
from sbp_tf.pruning import scores as methods_lib
from sbp_tf.pruning import rounds, state
from sbp_tf.pruning.rounds import Scores  # noqa: F401  (public here too)

SCOPES = ("global", "layerwise")
ON_COLLAPSE = ("warn", "error", "ignore")


def resolve_method(method, **options) -> methods_lib.Method:
  """A :class:`Method` instance from a name, class or instance plus options.

  Raises:
    ValueError: unknown name or option (the message lists the valid ones).
  """
  if isinstance(method, methods_lib.Method):
    if options:
      raise ValueError(f"Method options {sorted(options)} were given with a "
                       f"{type(method).__name__} instance. Fix: pass them "
                       "to its constructor, or pass the method by name.")
    return method
  if isinstance(method, type) and issubclass(method, methods_lib.Method):
    methods_lib.check_options(method, options)
    return method(**options)
  return methods_lib.get(method, **options)


def score(model, method, data=None, *, loss=None, loss_weights=None,
          num_batches: int = 1, seed: Optional[int] = None, strategy=None,
          masks: Optional[Mapping[str, np.ndarray]] = None,
          round_index: int = 0, scoring_mode: str = "training", kit=None,
          **method_options) -> Scores:
  """Scores every prunable weight of ``model``; leaves the model unchanged.

  Every variable scoring touches (batch-norm statistics, SynFlow's ``|W|``)
  is restored bit for bit afterwards.

  Args:
    model: a built tf.keras model.
    method: a registered name (see :func:`methods`), Method class or
      instance.
    data: ``(x, y)`` or a Dataset of ``(x, y)`` batches (data-driven
      methods); ``x`` and ``y`` may be nested (tuples, dicts), as ``fit``
      takes them.
    loss: the saliency loss: a Keras loss (object or name), a dict/list of
      them per output, or a callable ``loss(y_true, y_pred)`` over the
      output structure; default sparse CE on one output (``from_logits``
      False where it ends in a softmax). See :func:`saliency.resolve_loss`.
    loss_weights: weight of each output's loss (dict by name or list).
    num_batches: batches whose gradients are summed.
    seed: seed of the random method.
    strategy: the tf.distribute strategy the model was built under.
    masks: key -> 0/1 weights still alive (iterative rounds; pruned weights
      are expected to be zero in ``model`` already).
    round_index: 0-based round of iterative pruning.
    scoring_mode: the forward pass data-driven scores differentiate:
      ``'training'`` (batch norm on the batch's statistics, dropout active;
      the default) or ``'inference'`` (moving statistics, dropout off: the
      reference implementation's default). See :mod:`conventions`.
    kit: the Keras path's hooks (:mod:`sbp_tf.pruning.kit`; default
      tf_keras).
    **method_options: the method's constructor arguments, e.g.
      ``temperature=100.0`` for GraSP (see :func:`method_options`).

  Returns:
    :class:`Scores`, finite float64 arrays of the kernels' shapes.

  Example::

    s = score(model, "grasp", data=(x, y), temperature=100.0)
    s.keep   # 'smallest'
  """
  kit = kit_lib.resolve(kit)
  kit.check_model(model, f"{kit.prefix}.score")
  conventions.check_scoring_mode(scoring_mode)
  m = resolve_method(method, **method_options)
  targets = kit.prunable_targets(model)
  snap = state.snapshot(model)
  try:
    return score_with(kit, m, model, targets, data=data, loss=loss,
                      loss_weights=loss_weights, num_batches=num_batches,
                      seed=seed, strategy=strategy, masks=masks,
                      round_index=round_index, scoring_mode=scoring_mode)
  finally:
    state.restore(snap)


def score_with(kit, m, model, targets, **ctx_fields) -> Scores:
  """``m.score`` on the kit's :class:`ScoreContext`, checked
  (:func:`rounds.checked`)."""
  ctx = kit.score_context(model=model, targets=targets, kit=kit, **ctx_fields)
  return rounds.checked(m, m.score(ctx), targets)


def select(scores: Mapping[str, np.ndarray], sparsity: float, *,
           scope: str = "global", dense: Iterable[str] = (),
           alive: Optional[Mapping[str, np.ndarray]] = None,
           count_rule: str = "round") -> masks_lib.Masks:
  """Masks keeping the top ``round((1 - sparsity) * N)`` weights.

  Global scope: one threshold over all ``N`` weights (layers in ``dense``
  count as kept); layerwise: ``round((1 - sparsity) * n_l)`` per layer.
  Ties go to the earlier weight (layers in key order, then flat index).

  Args:
    scores: a :class:`Scores` (its ``keep`` direction is honoured) or any
      key -> array mapping, read as importance (larger = keep).
    sparsity: fraction removed, in ``[0, 1]``.
    scope: ``'global'`` (the paper) or ``'layerwise'``.
    dense: keys kept fully.
    alive: key -> 0/1 mask; dead weights (0) rank last and are never revived.
    count_rule: ``'round'`` (keep ``round((1 - s) * N)``, the default) or
      ``'floor_pruned'`` (keep ``N - int(s * N)``, the reference
      implementation's); per layer with ``scope='layerwise'``.

  Returns:
    :class:`Masks` (float32 0/1), in the key order of ``scores``.

  Example::

    masks = select({"a": np.array([3., 1.]), "b": np.array([2.])}, 1 / 3)
    # a: [1, 0], b: [1]
  """
  if scope not in SCOPES:
    raise ValueError(f"scope={scope!r} is not known. Fix: use one of {SCOPES}.")
  s = float(sparsity)
  if not 0.0 <= s <= 1.0:
    raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}. Fix: "
                     "pass the fraction of weights removed, e.g. 0.9.")
  conventions.check_count_rule(count_rule)
  return select_density(scores, 1.0 - s, scope=scope, dense=dense,
                        alive=alive, count_rule=count_rule)


select_density = rounds.select_density


def apply(model, masks: Mapping[str, np.ndarray], *, rescale=False,
          reference: Optional[Mapping[str, np.ndarray]] = None, kit=None
          ) -> Dict[str, np.ndarray]:
  """Zeros the pruned weights in place (``W <- W * delta``), then optionally
  rescales the kept ones (``W <- rho * W * delta``, paper Prop. 3).

  Args:
    model: the model ``masks`` was selected for.
    masks: key -> 0/1 mask for prunable kernels (others are untouched).
    rescale: False, True (= ``'offset'``, the paper) or
      ``'channel'``/``'unit'`` (see :mod:`rescale`).
    reference: key -> unpruned kernels for the empirical ``sigma_w^2``
      (default: the model's kernels before this call).
    kit: the Keras path's hooks (default tf_keras).

  Returns:
    key -> rescaling factors ``rho`` (empty without rescale).

  Raises:
    ValueError: a mask names no weight of ``model`` or has another shape
      (nothing is changed).
  """
  kit = kit_lib.resolve(kit)
  kit.check_model(model, f"{kit.prefix}.apply")
  mode = rescale_lib.normalize_mode(rescale)
  m = masks if isinstance(masks, masks_lib.Masks) else masks_lib.Masks(masks)
  m.validate(model, kit=kit)
  if mode and reference is None:
    reference = {t.key: t.variable.numpy()
                 for t in kit.prunable_targets(model) if t.key in m}
  m.apply(model, kit=kit)
  return (rescale_lib.rescale(model, m, mode, reference=reference, kit=kit)
          if mode else {})


def diagnose(model, masks: Mapping[str, np.ndarray],
             scores: Optional[Mapping[str, np.ndarray]] = None,
             dense: Iterable[str] = (), *, kit=None) -> Dict:
  """What ``masks`` do to ``model`` at init, before any training.

  Returns a dict: ``collapsed`` (keys of fully pruned layers),
  ``connected`` / ``reachable_fraction`` / ``dead`` (kernels on no
  input-output path, see :func:`diagnostics.connectivity`), all None with
  the reason in ``connectivity_unavailable`` where the check is not defined
  (a subclassed model without a static graph, an input of no fixed shape)
  or fails (a layer the linearized pass cannot run): a diagnostic never
  turns a good prune into an exception. Given ``scores``, also
  ``critical_sparsity`` / ``critical_layer`` (the largest sparsity at which
  these scores keep every layer alive); ``collapse_causes`` (collapsed key
  -> ``rnn_direction``/``attention``/``gate``/``skip``, where the outputs
  stay connected: :mod:`sbp_tf.pruning.causes`) and ``edge_layers`` (the
  first and last keys). ``kit``: the Keras path's hooks
  (:mod:`sbp_tf.pruning.kit`; default tf_keras).
  """
  m = masks if isinstance(masks, masks_lib.Masks) else masks_lib.Masks(masks)
  out = dict(collapsed=m.collapsed(), connected=None, reachable_fraction=None,
             dead=None)
  try:
    conn = diagnostics.connectivity(model, m, kit=kit)
  except Exception as e:  # pylint: disable=broad-except
    # Whatever a layer raises in the linearized pass (AttributeError of a
    # subclassed model included): the check is unavailable, not fatal.
    out["connectivity_unavailable"] = f"{type(e).__name__}: {e}"
  else:
    out.update(connected=conn.connected, dead=list(conn.dead),
               reachable_fraction=conn.reachable_fraction)
    if conn.connected and out["collapsed"]:
      out["collapse_causes"] = causes.collapse_causes(
          model, out["collapsed"], kit_lib.resolve(kit))
  keys = list(m)
  out["edge_layers"] = [keys[0], keys[-1]] if keys else []
  if scores is not None:
    keep = scores.keep if isinstance(scores, Scores) else "largest"
    crit = diagnostics.critical_sparsity(scores, keep, set(dense))
    out.update(critical_sparsity=crit.sparsity, critical_layer=crit.bottleneck)
  return out
