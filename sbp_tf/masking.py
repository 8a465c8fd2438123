"""Fixed pruning masks in plain Keras: a mask wrapper layer that keeps weights sparse.

Pruning at initialization fixes a 0/1 mask ``m`` per prunable weight before
training; training must then keep ``w = w * m`` exactly. Two pieces do it,
with no tfmot dependency:

* :class:`MaskedLayer`, a ``keras.layers.Wrapper`` that stores the mask as a
  non-trainable weight (so it travels with checkpoints and saved models);
* a variable *constraint* ``w <- c(w) * m`` on every masked weight. Keras
  optimizers apply variable constraints right after each update, inside the
  compiled train step, so pruned weights are exactly zero after every
  optimizer step, in every checkpoint, at no extra dispatch cost, and under
  ``tf.distribute`` strategies too (the constraint runs per replica).

Usage::

    masked = sbp_tf.masking.wrap(model, result.masks)   # masks keyed by target
    masked.compile(...); masked.fit(x, y, epochs=2)     # no callback needed
    final = sbp_tf.masking.strip(masked)                # plain Keras layers

The same helpers (:func:`check_masks`, :func:`keep_sparse`) back
``sbp_tf.tfmot``.
"""

from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import keras, tf
from sbp_tf.pruning.targets import (Target, layer_targets, prunable_attrs,
                                    prunable_targets, resolve_or_none)

__all__ = [
    "MaskedLayer", "wrap", "strip", "unwrap", "check_masks", "keep_sparse",
    "apply_masks", "wrapper_masks", "custom_objects", "constrain",
]

_MAX_LISTED = 5


def _listing(keys) -> str:
  keys = list(keys)
  shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED])
  return shown + (f" (+{len(keys) - _MAX_LISTED} more)"
                  if len(keys) > _MAX_LISTED else "")


def check_masks(model, masks, *, allow_missing=False
                ) -> List[Tuple[Target, np.ndarray]]:
  """Validates ``masks`` against ``model`` and pairs each with its target.

  Checks: ``masks`` is a Mapping; the model has prunable weights; every key is
  a prunable target key of ``model`` (``sbp_tf.pruning.prunable_targets``);
  shapes match the weights; values are exactly 0 or 1.

  Args:
    model: a built Keras model (plain or wrapped).
    masks: Mapping target key -> 0/1 array (e.g. ``sbp_tf.pruning.Masks``).
    allow_missing: if False (default) every prunable target needs a mask;
      if True, targets without one stay dense.

  Returns:
    ``[(target, mask as float32 array)]`` in model order.

  Raises:
    TypeError: ``masks`` is not a Mapping.
    ValueError: nothing prunable, unknown/missing key, shape or value mismatch.
  """
  if not isinstance(masks, Mapping):
    raise TypeError(
        f"masks must be a Mapping from target key to a 0/1 array (e.g. "
        f"sbp_tf.pruning.Masks), got {type(masks).__name__}. Fix: pass "
        "prune(...).masks or a dict keyed like sbp_tf.pruning.prunable_targets.")
  targets = prunable_targets(model)
  if not targets:
    raise ValueError(
        f"Model {model.name!r} has nothing prunable (no Dense/Conv kernels). "
        "Fix: pass a model with Dense, Conv or DepthwiseConv layers.")
  by_key = {t.key: t for t in targets}
  unknown = [k for k in masks if k not in by_key]
  if unknown:
    raise ValueError(
        f"masks for a different model: keys {_listing(unknown)} are not "
        f"prunable targets of model {model.name!r}, whose keys are "
        f"{_listing(by_key)}. Fix: compute the masks on this model "
        "(sbp_tf.pruning.prune) or load the masks saved for it.")
  missing = [k for k in by_key if k not in masks]
  if missing and not allow_missing:
    raise ValueError(
        f"masks are missing prunable targets {_listing(missing)} of model "
        f"{model.name!r} (masks for a different model?). Fix: compute the "
        "masks on this model, or pass allow_missing=True to leave those "
        "weights dense.")
  out = []
  for t in targets:
    if t.key not in masks:
      continue
    m = np.asarray(masks[t.key])
    shape = tuple(t.variable.shape)
    if m.shape != shape:
      raise ValueError(
          f"masks for a different model: mask {t.key!r} has shape {m.shape} "
          f"but the weight has shape {shape}. Fix: compute the masks on this "
          "model (same architecture and width).")
    bad = ~((m == 0) | (m == 1))
    if bad.any():
      raise ValueError(
          f"mask {t.key!r} holds values other than 0 and 1 (e.g. "
          f"{m[bad].ravel()[0]!r}). Fix: binarize it, e.g. (scores > "
          "threshold).astype('float32').")
    out.append((t, m.astype(np.float32)))
  return out


class _MaskConstraint:
  """Variable constraint ``w -> c(w) * mask`` (``c`` the previous constraint).

  The mask is read from a variable at every call, so it tracks the mask the
  wrapper holds (also its per-replica copy under a distribution strategy).
  """

  def __init__(self, mask_variable, previous=None):
    self.mask = mask_variable
    self.previous = previous

  def __call__(self, w):
    if self.previous is not None:
      w = self.previous(w)
    return w * tf.cast(self.mask, w.dtype)


def _components(variable):
  """The concrete variables behind a (distributed / autocast) variable."""
  comps = list(getattr(variable, "values", None) or [variable])
  return [compat.autocast_inner(c) for c in comps]  # mixed precision


def _set_mask_constraint(variable, mask_variable) -> bool:
  """Makes the optimizer re-apply ``mask_variable`` after each update of it.

  Returns True if a constraint was (re)installed, False if already there.
  """
  changed = False
  for comp in _components(variable):
    cur = comp.constraint
    if isinstance(cur, _MaskConstraint):
      if cur.mask is mask_variable:
        continue
      cur = cur.previous  # a stale mask from an older wrapper: replace it
    # Keras applies it at every optimizer step: sparsity stays in-graph.
    compat.set_variable_constraint(comp, _MaskConstraint(mask_variable, cur))
    changed = True
  return changed


def _local_variables(layer) -> Dict[str, object]:
  """``{local key: variable}`` of the prunable weights inside ``layer``."""
  return {k: t.variable for k, t in layer_targets(layer).items()}


def _resolve(layer, attr):
  """The variable of ``layer`` named by ``attr``: a local key
  (``"kernel"``, ``"query/kernel"``) or a plain attribute; None if the
  layer has not created it yet (built lazily on its first call)."""
  local = _local_variables(layer)
  if attr in local:
    return local[attr]
  return resolve_or_none(layer, attr.replace("/", "."))


@keras.utils.register_keras_serializable(package="sbp_tf")
class MaskedLayer(keras.layers.Wrapper):
  """Wraps a layer and holds fixed 0/1 masks for its prunable weights.

  For each prunable weight (``kernel``, ``depthwise_kernel``,
  ``embeddings``, an RNN's ``lstm_cell/recurrent_kernel``, an attention
  layer's ``query/kernel``: keys relative to the wrapped layer, see
  ``sbp_tf.pruning.layer_targets``) the wrapper adds a non-trainable
  ``<key>_mask`` weight and constrains the weight to ``w * mask`` after
  every optimizer step. Forward pass is the wrapped layer's, unchanged: the
  weights themselves are kept sparse. Masks are stored as ``uint8`` (a
  quarter of a float32 copy in checkpoints and saved models); a layer saved
  before that (no ``mask_dtype`` in its config) loads with its float masks.

  Usage::

      layer = MaskedLayer(keras.layers.Dense(10))
      y = layer(x)                             # builds; masks start as ones
      layer.set_mask("kernel", mask)           # also zeroes pruned weights

  Args:
    layer: the layer to wrap (must have a prunable weight).
    attrs: which weights to mask; default all prunable ones.
    mask_dtype: dtype of the stored masks (default ``"uint8"``; None: the
      weight's own dtype).
  """

  def __init__(self, layer, attrs=None, mask_dtype="uint8", **kwargs):
    if not isinstance(layer, keras.layers.Layer):
      raise TypeError(f"MaskedLayer wraps a keras Layer, got {type(layer)}.")
    attrs = tuple(attrs) if attrs is not None else tuple(
        layer_targets(layer) or prunable_attrs(layer))
    if not attrs:
      raise ValueError(
          f"Layer {layer.name!r} ({type(layer).__name__}) has no prunable "
          "weights. Fix: wrap only layers sbp_tf.pruning.prunable_targets "
          "lists (or register the class with pruning.register_target).")
    kwargs.setdefault("name", "masked_" + layer.name)
    super().__init__(layer, **kwargs)
    self.attrs = attrs
    self.mask_dtype = mask_dtype
    self.mask_vars: Dict[str, tf.Variable] = {}
    # Sequential's first layer carries the input shape; forward it.
    if (compat.batch_input_shape(self) is None and
        compat.batch_input_shape(layer) is not None):
      compat.set_batch_input_shape(self, compat.batch_input_shape(layer))

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    config.setdefault("mask_dtype", None)  # saved before uint8 masks
    return super().from_config(config, custom_objects)

  def build(self, input_shape=None):
    if not self.layer.built:
      self.layer.build(input_shape)
      self.layer.built = True
    self._make_masks()
    super().build(input_shape)

  def _make_masks(self):
    """Creates the mask weights whose variables exist (all of them, except
    for a layer building its weights on its first call, e.g. attention)."""
    for attr in self.attrs:
      weight = _resolve(self.layer, attr)
      if attr in self.mask_vars or weight is None:
        continue
      dtype = self.mask_dtype or getattr(weight, "true_dtype", weight.dtype)
      self.mask_vars[attr] = self.add_weight(
          name=attr.replace("/", ".") + "_mask", shape=weight.shape,
          dtype=dtype, initializer="ones", trainable=False,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      _set_mask_constraint(weight, self.mask_vars[attr])

  def call(self, inputs, *args, **kwargs):
    out = self.layer(inputs, *args, **kwargs)
    if len(self.mask_vars) < len(self.attrs):
      self._make_masks()  # the wrapped layer built its weights just now
    return out

  def compute_output_shape(self, input_shape):
    return self.layer.compute_output_shape(input_shape)

  def get_config(self):
    config = super().get_config()
    config["attrs"] = list(self.attrs)
    config["mask_dtype"] = self.mask_dtype
    return config

  def set_mask(self, attr, mask):
    """Installs ``mask`` for ``attr`` and zeroes the pruned weights: w <- w*m."""
    weight = _resolve(self.layer, attr)
    m = self.mask_vars[attr]
    m.assign(np.asarray(mask, m.dtype.as_numpy_dtype))
    weight.assign(weight * tf.cast(m, weight.dtype))

  def masked_weights(self):
    """``[(weight, mask variable)]`` pairs of this wrapper."""
    return [(_resolve(self.layer, a), self.mask_vars[a]) for a in self.attrs
            if a in self.mask_vars]


def custom_objects() -> dict:
  """Custom objects needed to load models holding :class:`MaskedLayer`."""
  return {"MaskedLayer": MaskedLayer,
          keras.utils.get_registered_name(MaskedLayer): MaskedLayer}


def walk_layers(model):
  """Yields every layer of ``model``, depth first, entering wrapped and nested
  models (a wrapper is yielded, then the model it wraps, if any, is walked)."""
  for layer in model.layers:
    yield layer
    inner = layer.layer if isinstance(layer, keras.layers.Wrapper) else layer
    if isinstance(inner, keras.Model):
      yield from walk_layers(inner)


def wrapper_masks(model) -> Dict[str, Tuple[object, object]]:
  """Maps each masked target key of a wrapped model to (weight, mask var).

  Covers :class:`MaskedLayer` and tfmot ``PruneLowMagnitude`` wrappers (any
  wrapper exposing ``masked_weights()`` or ``pruning_vars``).
  """
  owner = {}
  for layer in walk_layers(model):
    if isinstance(layer, MaskedLayer):
      pairs = layer.masked_weights()
    elif hasattr(layer, "pruning_vars") and isinstance(
        layer, keras.layers.Wrapper):
      pairs = [(w, m) for w, m, _ in layer.pruning_vars]
    else:
      continue
    for w, m in pairs:
      owner[id(w)] = (w, m)
  return {t.key: owner[id(t.variable)] for t in prunable_targets(model)
          if id(t.variable) in owner}


def keep_sparse(model) -> bool:
  """Constrains every masked weight of ``model`` to ``w * mask`` after each step.

  Idempotent. Returns True if anything was (re)installed (a compiled train
  function traced before then must be rebuilt to see it).
  """
  changed = False
  for w, m in wrapper_masks(model).values():
    changed |= _set_mask_constraint(w, m)
  return changed


def apply_masks(model):
  """Re-zeroes pruned weights of a wrapped model: ``w <- w * mask``."""
  for w, m in wrapper_masks(model).values():
    w.assign(w * tf.cast(m, w.dtype))


def _is_mask_wrapper(layer) -> bool:
  """A wrapper that holds masks (:class:`MaskedLayer`, tfmot's
  ``PruneLowMagnitude``), as opposed to a Bidirectional/TimeDistributed."""
  return isinstance(layer, MaskedLayer) or (
      isinstance(layer, keras.layers.Wrapper) and hasattr(layer, "pruning_vars"))


def check_wrappable(model, where: str) -> None:
  """Raises ValueError unless ``model`` (and every sub-model) is Sequential
  or functional, the models a wrapper can be cloned into; the message names
  :func:`constrain`, which keeps masks on any model."""
  def graph(m):
    return isinstance(m, keras.Sequential) or compat.is_graph_network(m)

  subclassed = [model] if not graph(model) else [
      m for m in walk_layers(model) if isinstance(m, keras.Model) and not graph(m)]
  if not subclassed:
    return
  what = ("model" if subclassed[0] is model else
          f"sub-model {subclassed[0].name!r} of model")
  raise ValueError(
      f"{where}: {what} {model.name!r} is subclassed; only Sequential and "
      "functional models (and sub-models) can be cloned with wrapper layers. "
      "Fix: keep its masks in place with sbp_tf.masking.constrain(model, "
      "masks) (same training guarantee, no wrapper layers), or build it with "
      "the functional API.")


def clone_wrapping(model, make_wrapper: Callable, layer_ids) -> keras.Model:
  """Clones ``model`` (recursing into sub-models) wrapping chosen layers.

  Layers are reused, not copied (the clone shares weights with ``model``),
  as tfmot does. ``make_wrapper(layer)`` is called for layers whose id is in
  ``layer_ids``, structural wrappers included (a ``Bidirectional`` or
  ``TimeDistributed`` is wrapped whole); mask wrappers are kept as they are.
  """
  check_wrappable(model, "sbp_tf.masking.clone_wrapping")

  def clone_fn(layer):
    if isinstance(layer, keras.Model):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if id(layer) in layer_ids and not _is_mask_wrapper(layer):
      return make_wrapper(layer)
    return layer

  clone = keras.models.clone_model(model, clone_function=clone_fn)
  if not clone.built:
    clone.build(model.input_shape)
  # A wrapped output layer is named after its wrapper; the user's per-output
  # losses and metrics ({"cls": ...}) address the original output names.
  clone.output_names = list(model.output_names)
  return clone


def install_masks(wrapped, checked) -> None:
  """Writes checked masks into the wrappers of ``wrapped`` and zeroes weights."""
  pairs = wrapper_masks(wrapped)
  for target, mask in checked:
    if target.key not in pairs:
      raise ValueError(
          f"No mask wrapper holds {target.key!r} after wrapping (layer type "
          f"{type(target.layer).__name__}). Fix: keep the masks in place with "
          "sbp_tf.masking.constrain(model, masks), and report this model to "
          "sbp_tf.")
    w, m = pairs[target.key]
    m.assign(np.asarray(mask, m.dtype.as_numpy_dtype))
    w.assign(w * tf.cast(m, w.dtype))
  keep_sparse(wrapped)


def owners(checked) -> Dict[int, List[str]]:
  """``{id(owner layer): [local keys]}``: which graph layer each wrapper
  wraps (the layer itself, or the RNN / Bidirectional / attention / custom
  layer holding it) and which of its weights it masks."""
  attrs_of = {}
  for t, _ in checked:
    attrs_of.setdefault(id(t.owner), []).append(t.local)
  return attrs_of


def constrain(model, masks, *, allow_missing=False):
  """Keeps ``masks`` on ``model`` in place, without wrapper layers.

  Zeroes the pruned weights and installs the in-graph constraint
  ``w <- c(w) * m`` on each masked variable (``m`` a constant): works for
  any model, subclassed ones included. The masks are not saved with the
  model (its zeros are; recover them as ``w != 0``); a model loaded from a
  file needs ``constrain`` again before training. :func:`strip` removes the
  constraints.

  Returns:
    ``model``.
  """
  compat.check_not_keras3(model, "sbp_tf.masking.constrain")
  for t, m in check_masks(model, masks, allow_missing=allow_missing):
    mask = tf.constant(m.astype(np.uint8))
    t.variable.assign(t.variable * tf.cast(mask, t.variable.dtype))
    _set_mask_constraint(t.variable, mask)
  return model


def _remove_constraints(model) -> None:
  for t in prunable_targets(model):
    for comp in _components(t.variable):
      if isinstance(comp.constraint, _MaskConstraint):
        compat.set_variable_constraint(comp, comp.constraint.previous)


def wrap(model, masks, *, allow_missing=False) -> keras.Model:
  """Wraps each masked layer of ``model`` in :class:`MaskedLayer` (no tfmot).

  Returns a model computing the same function with ``w = w * m`` for every
  mask ``m``; pruned weights are zero now and after every optimizer step.
  The returned model shares its layers (weights) with ``model``. Call inside
  ``strategy.scope()`` when training distributed.

  Usage::

      masked = sbp_tf.masking.wrap(model, masks)
      masked.compile("sgd", loss); masked.fit(ds, epochs=2)

  Args:
    model: built Sequential or functional model (nested sub-models allowed).
    masks: Mapping target key -> 0/1 array (``sbp_tf.pruning.Masks``).
    allow_missing: leave targets without a mask dense instead of raising.

  Raises:
    TypeError / ValueError: see :func:`check_masks`; subclassed models
      (use :func:`constrain`).
  """
  compat.check_not_keras3(model, "sbp_tf.masking.wrap")
  checked = check_masks(model, masks, allow_missing=allow_missing)
  check_wrappable(model, "sbp_tf.masking.wrap")
  attrs_of = owners(checked)
  wrapped = clone_wrapping(
      model, lambda layer: MaskedLayer(layer, attrs=attrs_of[id(layer)]),
      set(attrs_of))
  install_masks(wrapped, checked)
  return wrapped


def strip(model) -> keras.Model:
  """Removes mask wrappers (:class:`MaskedLayer` and tfmot's), keeping zeros.

  Re-applies ``w <- w * mask`` first, then returns a clone made of the plain
  inner layers (sharing their weights), loadable without custom objects.

  Usage::

      final = sbp_tf.masking.strip(masked); final.save("model.keras")

  A subclassed model kept by :func:`constrain` is returned itself, its
  mask constraints removed.
  """
  if not (isinstance(model, keras.Sequential) or
          compat.is_graph_network(model)):
    _remove_constraints(model)
    return model
  apply_masks(model)

  def clone_fn(layer):
    if isinstance(layer, keras.Model):
      return keras.models.clone_model(layer, clone_function=clone_fn)
    if _is_mask_wrapper(layer):
      inner = layer.layer
      if (compat.batch_input_shape(inner) is None and
          compat.batch_input_shape(layer) is not None):
        compat.set_batch_input_shape(inner, compat.batch_input_shape(layer))
      return inner
    return layer

  clone = keras.models.clone_model(model, clone_function=clone_fn)
  # clone_model keeps a functional subclass; a class that exists only to
  # hold wrappers (sbp_tf.tfmot.guard) names the plain class to return.
  plain = getattr(type(clone), "stripped_class", None)
  if plain is not None:
    clone.__class__ = plain
  return clone


unwrap = strip
