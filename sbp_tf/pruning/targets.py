"""Which weights of a Keras model can be pruned, and their stable keys.

Every mask in sbp_tf is keyed by a *target key*: the path of nested layer
names down to the layer owning the weight, then the weight attribute, joined
by ``/``: ``"conv1/kernel"``, ``"backbone/block2_conv/kernel"``,
``"lstm/lstm_cell/recurrent_kernel"``, ``"mha/query/kernel"`` (the Keras
variable name without ``:0``, for layers nested in a model). Mask wrappers
and other ``keras.layers.Wrapper`` layers (tfmot's ``PruneLowMagnitude``,
sbp_tf's ``MaskedLayer``, ``TimeDistributed``) are transparent: the key is
that of the wrapped layer, so masks computed on a plain model apply unchanged
to its wrapped copy. ``Bidirectional`` is not: its two copies are
``"<bidi>/forward_<rnn>/..."`` and ``"<bidi>/backward_<rnn>/..."``.

The registry (:func:`registered_targets`, extended by
:func:`register_target`) says which attributes of a layer class are
prunable:

===============================================  ==========================
layer class                                      prunable attributes
===============================================  ==========================
SeparableConv1D/2D                               depthwise_kernel,
                                                 pointwise_kernel
DepthwiseConv1D/2D                               depthwise_kernel
Conv1D/2D/3D (transposed too), Dense,            kernel
EinsumDense
Embedding                                        embeddings
LSTMCell, GRUCell, SimpleRNNCell                 kernel, recurrent_kernel
BatchNormalization, LayerNormalization,          (none: never pruned)
GroupNormalization, PReLU
===============================================  ==========================

A layer not in the registry is searched for registered sublayers (the cell
of an LSTM/GRU/SimpleRNN, the two layers of a Bidirectional, the query/key/
value/output ``EinsumDense`` of a MultiHeadAttention, the layers of a
subclassed model or of a custom composite layer). A layer of unknown type
that holds trainable weights of its own is *not pruned* and listed by
:func:`unprunable_layers` (and in ``Masks.report(model)``), never skipped
silently. Biases, normalization parameters and scales are never targets.

Usage::

    for t in prunable_targets(model):
      print(t.key, t.variable.shape)
    register_target(MyLayer, ("w",))         # MyLayer.w is now prunable
"""

import dataclasses
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import keras

_L = keras.layers

# The layer attribute (and config field) holding each prunable weight's
# constraint: Keras 3 keeps masks there (sbp_tf.keras3.mask).
_CONSTRAINTS = {"kernel": "kernel_constraint",
                "recurrent_kernel": "recurrent_constraint",
                "embeddings": "embeddings_constraint",
                "depthwise_kernel": "depthwise_constraint",
                "pointwise_kernel": "pointwise_constraint"}


@dataclasses.dataclass(frozen=True)
class Slot:
  """One prunable weight of a layer class: its key segment, the attribute
  holding the variable (Keras 3 keeps a DepthwiseConv kernel in ``kernel``,
  keyed ``depthwise_kernel`` as in Keras 2) and its constraint attribute."""
  suffix: str
  attr: str
  constraint: str = ""

  @classmethod
  def of(cls, attr: str, stored_in: str = "") -> "Slot":
    held = stored_in or attr
    return cls(attr, held, _CONSTRAINTS.get(attr, ""))


class Table:
  """One Keras' built-in registry and the classes its walk needs.

  Args:
    keras_module: ``tf_keras`` or Keras 3 (``import keras``).
    builtin: ``[(class names, (Slot, ...))]``; the first isinstance match
      wins, so subclasses precede their bases (SeparableConv and
      DepthwiseConv are Convs). Names missing in this Keras are skipped.
  """

  def __init__(self, keras_module, builtin):
    layers = keras_module.layers
    self.keras = keras_module
    self.builtin = [(tuple(getattr(layers, n) for n in names
                           if hasattr(layers, n)), slots)
                    for names, slots in builtin]
    self.bidirectional = getattr(layers, "Bidirectional", ())
    self.wrapper = layers.Wrapper

  def lookup(self, layer) -> Optional[Tuple[Slot, ...]]:
    """The slots of ``layer`` (users' registrations first), None if its
    class is in no registry."""
    for classes, attrs in _USER:
      if isinstance(layer, classes):
        return tuple(Slot.of(a) for a in attrs)
    for classes, slots in self.builtin:
      if isinstance(layer, classes):
        return slots
    return None


def _slots(*attrs) -> Tuple[Slot, ...]:
  return tuple(Slot.of(a) for a in attrs)


def builtin(depthwise_kernel_in: str = "depthwise_kernel") -> List:
  """The built-in registry as ``[(class names, slots)]`` (the module
  table), the same for both Keras paths but for where a DepthwiseConv
  keeps its kernel (``depthwise_kernel_in``: Keras 3 uses ``kernel``)."""
  return [
      (("SeparableConv1D", "SeparableConv2D"),
       _slots("depthwise_kernel", "pointwise_kernel")),
      (("DepthwiseConv1D", "DepthwiseConv2D"),
       (Slot.of("depthwise_kernel", stored_in=depthwise_kernel_in),)),
      (("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
        "Conv3DTranspose", "Dense", "EinsumDense"), _slots("kernel")),
      (("Embedding",), _slots("embeddings")),
      (("LSTMCell", "GRUCell", "SimpleRNNCell"),
       _slots("kernel", "recurrent_kernel")),
      (("BatchNormalization", "LayerNormalization", "GroupNormalization",
        "UnitNormalization", "PReLU"), ()),
  ]


TF_KERAS = Table(keras, builtin())
_USER: List[Tuple[Tuple[type, ...], Tuple[str, ...]]] = []


def register_target(layer_class: type, attrs) -> type:
  """Declares which weight attributes of ``layer_class`` are prunable.

  One registry for both Keras paths (a tf_keras class serves
  :mod:`sbp_tf.pruning`, a Keras 3 one :mod:`sbp_tf.keras3`). Registered
  classes take precedence over the built-in table (the latest registration
  first), subclasses included. ``attrs=()`` declares a layer that holds
  weights but is never pruned (no "not pruned" report for it). An
  attribute may be a dotted path (``"cell.kernel"``); its key segment is
  the path as written.

  Args:
    layer_class: a ``keras.layers.Layer`` subclass (tf_keras or Keras 3).
    attrs: attribute names holding the prunable variables.

  Returns:
    ``layer_class`` (usable as a class decorator factory's result).

  Raises:
    TypeError: ``layer_class`` is not a Layer class or attrs not strings.
  """
  from sbp_tf.pruning.state import is_layer_class  # pylint: disable=import-outside-toplevel
  if not is_layer_class(layer_class):
    raise TypeError(f"register_target expects a keras.layers.Layer subclass, "
                    f"got {layer_class!r}. Fix: pass the class, e.g. "
                    "register_target(MyLayer, ('kernel',)).")
  attrs = (attrs,) if isinstance(attrs, str) else tuple(attrs)
  if not all(isinstance(a, str) and a for a in attrs):
    raise TypeError(f"register_target: attrs must be attribute names, got "
                    f"{attrs!r}. Fix: e.g. ('kernel', 'recurrent_kernel').")
  _USER.insert(0, ((layer_class,), attrs))
  return layer_class


def registered_targets(table: Table = TF_KERAS) -> Dict[str, Tuple[str, ...]]:
  """``{class name: prunable attributes}`` in lookup order (users' first)."""
  out = {}
  for classes, attrs in _USER:
    for cls in classes:
      out.setdefault(cls.__name__, tuple(attrs))
  for classes, slots in table.builtin:
    for cls in classes:
      out.setdefault(cls.__name__, tuple(s.suffix for s in slots))
  return out


@dataclasses.dataclass(frozen=True)
class Target:
  """One prunable weight.

  Attributes:
    key: stable name of the weight, ``"<layer path>/<attr>"``.
    layer: the (unwrapped) Keras layer that owns the weight.
    attr: the attribute (or dotted path) of ``layer`` holding the variable.
    owner: the layer of the model's graph containing ``layer``: ``layer``
      itself, or the composite around it (an RNN, Bidirectional,
      MultiHeadAttention, custom layer); the layer a mask wrapper wraps.
    local: the key relative to ``owner`` (``"kernel"``,
      ``"query/kernel"``, ``"lstm_cell/kernel"``).
    constraint_attr: the attribute of ``layer`` holding the weight's
      constraint (``"kernel_constraint"``; ``""`` if it has none).
  """
  key: str
  layer: object
  attr: str
  owner: object = None
  local: str = ""
  constraint_attr: str = ""

  @property
  def variable(self):
    return resolve(self.layer, self.attr)


def resolve(obj, path: str):
  """``obj.a.b`` for ``path = "a.b"``."""
  for part in path.split("."):
    obj = getattr(obj, part)
  return obj


_TABLES: Dict[str, Table] = {}


def register_table(family: str, table: Table) -> None:
  """Makes ``table`` the registry of the models of Keras ``family``
  (``'keras3'``: done by :mod:`sbp_tf.keras3.targets` on import)."""
  _TABLES[family] = table


def table_for(obj) -> Table:
  """The registry table of ``obj``'s Keras: :data:`TF_KERAS`, or the one
  registered for Keras 3 (:mod:`sbp_tf.keras3`).

  Raises:
    TypeError: a Keras 3 object while ``sbp_tf.keras3`` was never imported.
  """
  family = compat.keras_family(obj) or "tf_keras"
  if family == "tf_keras":
    return TF_KERAS
  if family not in _TABLES:
    raise TypeError(f"{type(obj).__name__} is a Keras 3 object; its prunable "
                    "weights are read by sbp_tf.keras3. Fix: `from sbp_tf "
                    "import keras3` and use keras3.prune / keras3.score.")
  return _TABLES[family]


def prunable_attrs(layer, table: Optional[Table] = None) -> tuple:
  """Key segments of the registered prunable weights of ``layer`` (may be
  empty; sublayers of a composite are not included, see
  :func:`layer_targets`)."""
  table = table or table_for(layer)
  return tuple(s.suffix for s in table.lookup(layer) or ())


def _is_transparent(layer, table: Table) -> bool:
  return (isinstance(layer, table.wrapper)
          and not isinstance(layer, table.bidirectional))


def _sublayers(layer) -> List:
  return compat.flatten_layers(layer, include_self=False, recursive=False)


def _visit(layer, prefix, table: Table, owner=None, base=""
           ) -> Iterator[Tuple[str, object, object, str]]:
  """Yields ``(path, layer, owner, base)`` for every layer down to the
  registered ones (``base``: the path of the model holding ``owner``)."""
  if _is_transparent(layer, table):
    if owner is None and not _is_mask_wrapper(layer):
      owner, base = layer, prefix  # TimeDistributed: the layer to wrap
    yield from _visit(layer.layer, prefix, table, owner, base)
    return
  if isinstance(layer, table.keras.Model):
    for sub in layer.layers:
      yield from _visit(sub, prefix + layer.name + "/", table)
    return
  if owner is None:
    owner, base = layer, prefix
  yield prefix + layer.name, layer, owner, base
  if table.lookup(layer) is None:  # a composite: search its sublayers
    for sub in _sublayers(layer):
      yield from _visit(sub, prefix + layer.name + "/", table, owner, base)


def _is_mask_wrapper(layer) -> bool:
  # MaskedLayer or tfmot's PruneLowMagnitude (both expose their masks).
  return hasattr(layer, "masked_weights") or hasattr(layer, "pruning_vars")


def resolve_or_none(obj, path: str):
  """:func:`resolve`, or None when an attribute on the path is missing."""
  try:
    return resolve(obj, path)
  except AttributeError:
    return None


def _walk(layer, prefix="", table: Table = TF_KERAS) -> Iterator[Target]:
  for path, sub, owner, base in _visit(layer, prefix, table):
    own = base + owner.name + "/"
    for slot in table.lookup(sub) or ():
      if resolve_or_none(sub, slot.attr) is not None:
        key = path + "/" + slot.suffix
        local = key[len(own):] if key.startswith(own) else key[len(base):]
        yield Target(key, sub, slot.attr, owner, local, slot.constraint)


def layer_targets(layer, table: Optional[Table] = None) -> Dict[str, Target]:
  """``{local key: Target}`` of the prunable weights inside ``layer``
  (keys relative to ``layer``: ``"kernel"``, ``"query/kernel"``)."""
  return {t.local: t for t in _walk(layer, "", table or table_for(layer))}


def _check_built(model):
  if not model.built:
    raise ValueError(
        f"Model {model.name!r} is not built, so its weights do not exist. "
        "Call it on an input or pass input_shape before pruning.")


def prunable_targets(model, table: Optional[Table] = None) -> List[Target]:
  """Lists the prunable weights of a built model in layer order.

  Args:
    model: a built Keras model (Sequential, functional or subclassed,
      possibly nested or wrapped by tfmot).
    table: the registry to read; default the model's own Keras'
      (:func:`table_for`).

  Returns:
    Targets in the model's layer order (inputs side first). The top-level
    model's own name is not part of the keys.

  Raises:
    ValueError: if the model is not built (its weights do not exist yet).
  """
  _check_built(model)
  table = table or table_for(model)
  out, seen = [], set()
  for sub in model.layers:
    for t in _walk(sub, "", table):
      if id(t.variable) in seen:  # shared layers appear once
        continue
      seen.add(id(t.variable))
      out.append(t)
  return out


def _weight_count(v) -> int:
  return int(np.prod([int(d) for d in v.shape]))


def unprunable_layers(model, table: Optional[Table] = None) -> List[Dict]:
  """Layers holding trainable weights of their own that no registry entry
  covers, so they are *not pruned*: ``[{layer, type, weights}]`` in layer
  order, each layer once (``weights``: number of trainable scalars).

  Register the class with :func:`register_target` to prune it (or with
  ``attrs=()`` to declare it never prunable and drop it from this list).
  """
  _check_built(model)
  table = table or table_for(model)
  out, seen = [], set()
  for sub in model.layers:
    for path, layer, _, _ in _visit(sub, "", table):
      if id(layer) in seen or table.lookup(layer) is not None:
        continue
      seen.add(id(layer))
      inner = {id(v) for s in _sublayers(layer) for v in s.trainable_weights}
      own = [v for v in layer.trainable_weights if id(v) not in inner]
      if own:
        out.append(dict(layer=path, type=type(layer).__name__,
                        weights=sum(_weight_count(v) for v in own)))
  return out
