"""The TensorFlow and Keras 2 handles, and the one adapter to Keras internals.

Usage::

    from sbp_tf.compat import tf, keras   # keras is tf_keras (Keras 2)
    from sbp_tf import compat
    compat.is_graph_network(model)         # functional model?

Masking needs a few private Keras/TF attributes that have no public
equivalent. Each is read or written by exactly one small function below
(``set_variable_constraint``, ``autocast_inner``, ``is_graph_network``,
``nodes_by_depth``, ``flatten_layers``, ``batch_input_shape``,
``set_batch_input_shape``, ``build_input_shape``, ``call_spec``,
``functional_class``, ``unfused_normalization``,
``fused_normalization``);
tests/test_compat.py checks each one against the
installed Keras, so a Keras release that moves an internal fails there, by
name, instead of deep inside pruning.

Touching ``tf.keras`` before ``sbp_tf`` is imported, in a process where
``TF_USE_LEGACY_KERAS`` was not set, makes ``tf.keras`` Keras 3, which tfmot
cannot wrap; this module then raises with the fix instead of failing later.
"""

from sbp_tf import _env  # (must precede the TensorFlow import)

import contextlib
import inspect
import sys
from typing import Dict, List, Optional

with _env.quiet_tensorflow_startup():
  import tensorflow as tf

keras = tf.keras

if not keras.__name__.startswith("tf_keras"):
  raise ImportError(
      "tf.keras resolved to %r, not tf_keras (Keras 2). tf.keras was "
      "used before sbp_tf was imported, without TF_USE_LEGACY_KERAS=1. Fix: set "
      "TF_USE_LEGACY_KERAS=1 in the environment, or import sbp_tf before "
      "touching tf.keras." % keras.__name__)
_env.quiet_tensorflow_python_logs(tf)
_env.probe_devices(tf)


def check_not_keras3(model, where: str) -> None:
  """Raises a one-line TypeError if ``model`` is a Keras 3 object.

  A model built after ``import keras`` (Keras 3) is not a tf_keras model;
  tfmot and sbp_tf cannot read it, and would otherwise answer with a
  misleading message or silently find nothing to prune.
  """
  mod = type(model).__module__ or ""
  if not isinstance(model, keras.Model) and (
      mod == "keras" or mod.startswith("keras.")):
    raise TypeError(
        f"{where}: got a Keras 3 model ({type(model).__name__} from "
        f"{mod}), but sbp_tf and tfmot need a Keras 2 (tf_keras) model. "
        "Fix: build it with tf.keras after `import sbp_tf` (or "
        "`import tf_keras as keras`), not with `import keras`, or use the "
        "Keras 3 path, sbp_tf.keras3 (keras3.prune, keras3.mask(model, "
        "masks)).")


__all__ = ["tf", "keras", "check_not_keras3", "register_serializable",
           "set_variable_constraint", "autocast_inner", "is_graph_network",
           "nodes_by_depth", "flatten_layers", "batch_input_shape",
           "set_batch_input_shape", "build_input_shape", "call_spec",
           "functional_class"]


def register_serializable(cls):
  """Registers ``cls`` as ``sbp_tf>Name`` and under its plain class name.

  The plain name is what ``.h5`` configs hold and what tf_keras looks up
  when it rebuilds a layer's initializer from a ``.keras`` file, so both
  formats load with plain ``keras.models.load_model``.
  """
  cls = keras.utils.register_keras_serializable(package="sbp_tf")(cls)
  keras.utils.get_custom_objects().setdefault(cls.__name__, cls)
  return cls


# --- Keras/TF internals: the only place sbp_tf touches private attributes. ---


def set_variable_constraint(variable, constraint) -> None:
  """Sets the constraint the optimizer applies to ``variable`` after a step.

  ``tf.Variable`` exposes ``constraint`` read-only; Keras 2 optimizers read
  ``variable.constraint`` (backed by ``_constraint``) at every update, so
  setting it keeps masked weights sparse in-graph.
  """
  if not hasattr(variable, "_constraint"):
    raise TypeError(
        f"cannot set the constraint of {type(variable).__name__}: it has no "
        "_constraint (tf.Variable internals changed). Fix: use the TensorFlow "
        "version pinned in pyproject.toml, or update "
        "sbp_tf.compat.set_variable_constraint.")
  variable._constraint = constraint  # pylint: disable=protected-access


def autocast_inner(variable):
  """The real variable behind a mixed-precision ``AutoCastVariable``, or
  ``variable`` itself when it is not one."""
  # AutoCastVariable keeps the wrapped variable in ``_variable``.
  return getattr(variable, "_variable", variable)


def functional_class() -> type:
  """tf_keras' ``Functional``, the class of every functional model (only
  ``keras.Model``, whose ``__new__`` returns it, is public)."""
  # Two layers of private modules; a Keras release may move it.
  from tf_keras.src.engine import functional  # pylint: disable=g-import-not-at-top
  return functional.Functional


def is_graph_network(model) -> bool:
  """Whether ``model`` is a functional (graph) model; False for a subclassed
  one and for anything that is not a Keras model."""
  if getattr(model, "_is_graph_network", False):  # tf_keras
    return True
  # Keras 3: a Functional model (Sequential builds one inside itself).
  return any(c.__name__ == "Functional" and c.__module__.startswith("keras.")
             for c in type(model).__mro__)


def nodes_by_depth(model) -> Dict[int, List]:
  """A functional model's nodes grouped by depth (``{depth: [Node]}``).

  Raises:
    TypeError: ``model`` is not a functional model.
  """
  if not is_graph_network(model):
    raise TypeError(
        f"{getattr(model, 'name', model)!r} is not a functional model, so it "
        "has no node graph. Fix: check compat.is_graph_network(model) first.")
  return model._nodes_by_depth  # pylint: disable=protected-access


def flatten_layers(layer, include_self: bool = True,
                   recursive: bool = True) -> List:
  """Every layer nested in ``layer`` (each once), Keras' own fast walk.

  ``tf.Module.submodules`` visits every attribute of every object and is
  much slower on deep models; for an object that is not a Keras layer this
  falls back to it.
  """
  flatten = getattr(layer, "_flatten_layers", None)
  if flatten is None:  # not a Keras layer: the generic module walk
    return ([layer] if include_self else []) + list(layer.submodules)
  return list(flatten(include_self=include_self, recursive=recursive))


@contextlib.contextmanager
def unfused_normalization(model):
  """While open, tf_keras BatchNormalization/LayerNormalization layers of
  ``model`` compute with plain ops instead of ``fused_batch_norm``.

  Why: TensorFlow's gradient of the fused batch-norm gradient is not exact.
  Measured on a conv before a training-mode BatchNormalization, ``H g``
  through the fused op is 0.85% (of the largest entry) off the float64
  value; unfused it is within float32 round-off (1e-6), as Keras 3 (which
  never fuses) is. First-order gradients agree either way. Tracing a
  second-order function inside this context makes its graph use the exact
  ops; a Keras 3 model has nothing to switch.
  """
  saved = []
  for layer in flatten_layers(model):
    for attr in ("fused", "_fused"):  # BatchNormalization, LayerNormalization
      if getattr(layer, attr, None) is True and keras_family(layer) == "tf_keras":
        saved.append((layer, attr))
        setattr(layer, attr, False)
  try:
    yield
  finally:
    for layer, attr in saved:
      setattr(layer, attr, True)


def _fusable(layer, inputs, mask) -> bool:
  """A Keras 3 BatchNormalization call that ``FusedBatchNormV3`` computes:
  a float32 4-D channels-last input, no mask, renorm or cross-replica
  statistics."""
  return (mask is None and not getattr(layer, "renorm", False)
          and not getattr(layer, "synchronized", False)
          and inputs.shape.rank == 4 and layer.axis in (-1, 3)
          and inputs.dtype == tf.float32 and layer.compute_dtype == "float32")


def _fused_call(layer, original):
  """``layer.call`` computing ``y = gamma (x - mean) / sqrt(var + eps) +
  beta`` in one fused kernel. Training mode (``training`` and the layer
  trainable, as Keras 3 decides): the batch's biased moments, and the
  moving statistics updated as Keras 3 does (``m <- m a + mean (1 - a)``,
  ``v <- v a + var (1 - a)``, ``a`` the momentum; the kernel's variance
  carries Bessel's factor ``n / (n - 1)``, removed here). Otherwise the
  moving statistics."""
  def call(inputs, training=None, mask=None):
    if not _fusable(layer, inputs, mask):
      return original(inputs, training=training, mask=mask)
    ch = inputs.shape[-1]
    gamma = layer.gamma if layer.scale else tf.ones([ch], tf.float32)
    beta = layer.beta if layer.center else tf.zeros([ch], tf.float32)
    gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
    if not (training and layer.trainable):
      return tf.compat.v1.nn.fused_batch_norm(
          inputs, gamma, beta, tf.convert_to_tensor(layer.moving_mean),
          tf.convert_to_tensor(layer.moving_variance), epsilon=layer.epsilon,
          data_format="NHWC", is_training=False)[0]
    y, mean, var = tf.compat.v1.nn.fused_batch_norm(
        inputs, gamma, beta, epsilon=layer.epsilon, data_format="NHWC",
        is_training=True)[:3]
    n = tf.cast(tf.size(inputs) // ch, tf.float32)
    var = var * (n - 1.0) / n
    a = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * a + mean * (1.0 - a))
    layer.moving_variance.assign(layer.moving_variance * a + var * (1.0 - a))
    return y
  return call


@contextlib.contextmanager
def fused_normalization(model):
  """While open, Keras 3 BatchNormalization layers of ``model`` compute
  with TensorFlow's fused kernel, as tf_keras's do.

  Why: Keras 3 never fuses; its batch norm is some 30 ops whose gradients
  made a traced ResNet-32 gradient 1.3-1.45x tf_keras's for the same
  weights and batch (3,020 graph ops against 993), and each eager call
  several ops instead of one. First-order gradients
  through the fused kernel are exact to float32 round-off (see
  :func:`unfused_normalization` for the second order, where they are not).
  Tracing a first-order function (or calling eagerly) inside this context
  uses the fused op;
  calls it cannot compute (:func:`_fusable`) run Keras 3's own code, and a
  tf_keras model has nothing to switch.
  """
  # No Keras 3 layer exists before Keras 3 is imported, and importing it
  # for a tf_keras model cost 1.2 s of a fresh process's first prune.
  keras3 = sys.modules.get("keras")
  bn = getattr(getattr(keras3, "layers", None), "BatchNormalization", None)
  saved = []
  for layer in flatten_layers(model) if bn is not None else ():
    if isinstance(layer, bn) and "call" not in vars(layer):
      saved.append(layer)
      layer.call = _fused_call(layer, layer.call)
  try:
    yield
  finally:
    for layer in saved:
      del layer.call


def batch_input_shape(layer) -> Optional[tuple]:
  """The input shape a layer was declared with (``input_shape=``), batch
  dimension first, or None."""
  return getattr(layer, "_batch_input_shape", None)


def set_batch_input_shape(layer, shape) -> None:
  """Declares ``layer``'s input shape as if built with ``input_shape=``, so a
  Sequential model starting with it knows its input (wrappers forward it)."""
  layer._batch_input_shape = shape  # pylint: disable=protected-access


def _is_shape(s) -> bool:
  return isinstance(s, tf.TensorShape) or (
      isinstance(s, (list, tuple)) and
      all(d is None or isinstance(d, int) for d in s))


def build_input_shape(model):
  """The input shape(s) ``model`` was built with (``model.build(shape)`` or
  its first call), batch dimension first, or None if it never was.

  Returns one ``tf.TensorShape``, a list of them or a dict of them, in the
  structure of the model's input (what ``build`` takes: a shape, a list or
  a dict of shapes). A subclassed model records its inputs nowhere else
  when it was built without being called.
  """
  # tf_keras: set by Layer._maybe_build (first call) and by Model.build.
  shape = getattr(model, "_build_input_shape", None)
  if shape is None:
    shape = _keras3_build_shape(model)
  if shape is None:
    return None
  if _is_shape(shape):
    return tf.TensorShape(shape)
  if isinstance(shape, dict):
    return {k: tf.TensorShape(v) for k, v in shape.items()}
  return [tf.TensorShape(v) for v in shape]


def _keras3_build_shape(model):
  """A Keras 3 model's recorded build shape (its public ``get_build_config``:
  the first call's input shapes, or those given to ``build``), batch
  dimension None, or None. tf_keras models answer through
  ``_build_input_shape`` above."""
  if keras_family(model) != "keras3" or not getattr(model, "built", False):
    return None
  shape = (model.get_build_config() or {}).get("input_shape")
  if shape is None:
    return None
  unbatched = lambda s: (None,) + tuple(s)[1:]  # the call's batch: any
  if _is_shape(shape):
    return unbatched(shape)
  if isinstance(shape, dict):
    return {k: unbatched(v) for k, v in shape.items()}
  return [unbatched(v) for v in shape]


def call_spec(model):
  """What a subclassed ``model`` records of its input: the ``tf.TensorSpec``
  structure of its first call's inputs (``save_spec``, batch dimension
  None), else the shape given to ``build`` as float specs (what ``build``
  feeds), else None (never called or built)."""
  save_spec = getattr(model, "save_spec", None)
  spec = save_spec(dynamic_batch=True) if callable(save_spec) else None
  if spec is not None and spec[0]:
    return spec[0][0]  # the inputs are call()'s first argument
  shape = build_input_shape(model)
  return None if shape is None else tf.nest.map_structure(
      lambda s: tf.TensorSpec(s, keras.backend.floatx()), shape)


def node_layer(node):
  """The layer a functional graph's node calls (tf_keras ``node.layer``,
  Keras 3 ``node.operation``)."""
  layer = getattr(node, "operation", None)
  return layer if layer is not None else node.layer


def node_input_tensors(node) -> List:
  """The symbolic tensors a node's call takes (either Keras)."""
  return list(getattr(node, "keras_inputs", None)
              or getattr(node, "input_tensors", None) or [])


def node_input_layers(layer) -> List[List]:
  """Per call of ``layer`` in a functional graph (tf_keras or Keras 3), the
  layers producing its inputs, in input order (``[]`` for a layer never
  called on symbolic inputs)."""
  out = []
  for node in getattr(layer, "_inbound_nodes", None) or []:
    tensors = node_input_tensors(node)
    out.append([t._keras_history[0] for t in tensors  # pylint: disable=protected-access
                if getattr(t, "_keras_history", None)])
  return out


def keras_family(obj) -> Optional[str]:
  """``'tf_keras'`` or ``'keras3'`` for an object (or function) of that
  Keras, found from its class hierarchy (a user's Keras 3 layer subclasses
  ``keras.layers.Layer``), None for anything else."""
  if inspect.isfunction(obj):
    modules = [getattr(obj, "__module__", "") or ""]
  else:
    cls = obj if isinstance(obj, type) else type(obj)
    modules = [c.__module__ or "" for c in cls.__mro__]
  for mod in modules:
    if mod.startswith("tf_keras"):
      return "tf_keras"
    if mod == "keras" or mod.startswith("keras."):
      return "keras3"
  return None


def keras_of(obj):
  """The Keras module ``obj`` (a model, layer, loss object or function)
  belongs to: Keras 3 (``import keras``) for its classes and functions, else
  tf_keras. Keras 3 is only imported where such an object already exists."""
  if keras_family(obj) == "keras3":
    import keras as keras3  # pylint: disable=import-outside-toplevel
    return keras3
  return keras
