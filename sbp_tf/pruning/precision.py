"""Computing in float32 or wider when a model runs under mixed precision.

Under a ``mixed_float16`` / ``mixed_bfloat16`` policy a layer keeps float32
variables but computes in float16 / bfloat16. Gradients of the saliency
loss then pass through half-precision tensors: GraSP's ``H g`` of
``logits / 200`` is ~1e-9 deep in a CNN, below float16's smallest
subnormal (6e-8), so whole conv kernels scored exactly 0; the TFLite
converter cannot lower the float16 ops either. The fix for both is the
same: a copy of the model rebuilt from its config with every float dtype
(and dtype policy) set to float32 (or float64), the same variables' values
assigned to it. The copy is functional: its layers' ``get_config`` /
``from_config`` rebuild them (a subclassed model cannot be copied).

Works on tf_keras and Keras 3 models (``keras`` names the model's Keras).

Usage::

    if precision.narrow_layers(model):
      copy = precision.FloatCopy(model, keras, "float32")
      copy.sync()                       # copy <- model's current values
      y = copy.model(x)                 # float32 throughout
"""

import warnings
from typing import Dict, List

import numpy as np

from sbp_tf import compat
from sbp_tf.pruning import state

NARROW = ("float16", "bfloat16")


def narrow_layers(model) -> List[str]:
  """Names of the layers of ``model`` (nested ones included) that compute in
  float16 or bfloat16 (a mixed-precision policy); empty in float32."""
  return [l.name for l in compat.flatten_layers(model)
          if str(getattr(l, "compute_dtype", None)) in NARROW]


def with_float_dtype(config, dtype: str):
  """``config`` with every float dtype (or dtype policy) set to ``dtype``.

  Initializers become zeros: every weight is overwritten, and a random one
  would advance the global random seed's op counter (a side effect).
  """
  if isinstance(config, dict):  # dtype: a name, None, or a Policy dict
    return {k: (dtype if k == "dtype" and (
        v is None or isinstance(v, dict) or "float" in str(v)) else
                {"class_name": "Zeros", "config": {}}
                if k.endswith("initializer") and v is not None else
                with_float_dtype(v, dtype)) for k, v in config.items()}
  if isinstance(config, (list, tuple)):
    return [with_float_dtype(v, dtype) for v in config]
  return config


def clone(model, keras, dtype: str, input_shapes=None):
  """``model`` rebuilt from its config with every float in ``dtype``.

  Args:
    model: a functional or Sequential model (tf_keras or Keras 3).
    keras: that model's Keras module.
    dtype: ``'float32'`` or ``'float64'``.
    input_shapes: per input, its shape (the first, batch, dimension is
      left free); default the model's.

  Returns:
    ``(clone, pairs)``: the clone (weights zero) and ``[(model weight, clone
    weight)]`` of their unique weights, in order.

  Raises:
    ValueError: the model is subclassed (no config to rebuild), or the
      clone's weights do not correspond to the model's.
  """
  if not getattr(model, "inputs", None):
    raise ValueError(f"model {model.name!r} is subclassed (no config to "
                     f"rebuild it from in {dtype})")
  shapes = input_shapes or [tuple(x.shape) for x in model.inputs]
  ins = [keras.Input(shape=tuple(s[1:]), name=name,
                     dtype=dtype if _is_float(x.dtype) else x.dtype)
         for s, x, name in zip(shapes, model.inputs, _input_names(model))]
  copy = keras.models.clone_model(
      model, input_tensors=ins if len(ins) > 1 else ins[0],
      clone_function=lambda layer: layer.__class__.from_config(
          with_float_dtype(layer.get_config(), dtype)))
  own, cloned = state.unique_weights(model), state.unique_weights(copy)
  if len(own) != len(cloned) or any(
      tuple(v.shape) != tuple(c.shape) for v, c in zip(own, cloned)):
    raise ValueError("the clone's weights do not match the model's")
  return copy, list(zip(own, cloned))


def _input_names(model) -> List[str]:
  """The names of ``model``'s Input layers (its signature's input names)."""
  names = getattr(model, "input_names", None)  # tf_keras
  if names:
    return list(names)
  return [x.name for x in model.inputs]  # Keras 3: the Input's name


def _is_float(dtype) -> bool:
  return "float" in str(getattr(dtype, "name", dtype))


class FloatCopy:
  """A ``dtype`` copy of ``model`` (see :func:`clone`) kept in step with it.

  Attributes:
    model: the copy.
    mapped: ``id(model weight) -> copy weight``.
  """

  def __init__(self, model, keras, dtype: str = "float32"):
    self.model, self._pairs = clone(model, keras, dtype)
    self.mapped: Dict[int, object] = {id(v): c for v, c in self._pairs}

  def sync(self) -> None:
    """Copies every weight's current value (float32 into ``dtype``, exact
    when wider) from the model into the copy."""
    for v, c in self._pairs:
      c.assign(np.asarray(v.numpy(), str(getattr(c.dtype, "name", c.dtype))))


def float32_copy(model, keras, strategy=None, what: str = "scoring"):
  """A float32 :class:`FloatCopy` of ``model`` if it computes in a narrower
  float (built under ``strategy``'s scope when given), else None.

  A model that cannot be copied (subclassed) gets None and one warning that
  ``what`` runs in its own half precision, with the fix.
  """
  narrow = narrow_layers(model)
  if not narrow:
    return None
  try:
    if strategy is None:
      return FloatCopy(model, keras, "float32")
    with strategy.scope():
      return FloatCopy(model, keras, "float32")
  except Exception as e:  # pylint: disable=broad-except
    # Anything a layer's get_config/from_config may raise: run as it is.
    warnings.warn(
        f"{what} of model {model.name!r} runs in its mixed-precision compute "
        f"dtype ({len(narrow)} layer(s) compute in float16/bfloat16, e.g. "
        f"{narrow[0]!r}): it cannot be rebuilt in float32 ({e}), and "
        "half-precision gradients may underflow to 0. Fix: build the model "
        "under keras.mixed_precision.set_global_policy('float32'), prune it, "
        "then load its weights into the mixed-precision model.", stacklevel=3)
    return None


def in_float32(model, keras, caller: str):
  """``model``, or for a model computing in float16/bfloat16 its float32
  copy holding the same weights: what TFLite export converts and verifies
  against (the converter cannot lower half-precision Keras ops).

  Raises:
    ValueError: a mixed-precision model that cannot be rebuilt in float32
      (subclassed), with the fix.
  """
  if not narrow_layers(model):
    return model
  try:
    copy = FloatCopy(model, keras, "float32")
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
        f"{caller}: model {model.name!r} computes in float16/bfloat16 (mixed "
        f"precision) and cannot be rebuilt in float32 for TFLite ({e}). Fix: "
        "build the same model under keras.mixed_precision.set_global_policy("
        "'float32'), copy the weights (m32.set_weights(model.get_weights())) "
        "and export that model.") from None
  copy.sync()
  return copy.model
