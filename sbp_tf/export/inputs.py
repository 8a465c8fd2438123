"""The inputs an export is verified (and int8-calibrated) on.

``input_specs`` reads a model's inputs (name, per-example shape, dtype);
``as_inputs`` turns the user's ``representative_data`` (an array, a tuple or
dict of arrays, an ``(x, y)`` pair or a dataset) into one array per input,
or draws random ones: normal floats, token ids in ``[0, V)`` for inputs
feeding an Embedding of ``input_dim`` V. Either Keras.
"""

from typing import List, Optional, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import tf


NUM_CHECK = 32  # inputs used for verification when none are given


def input_specs(model) -> List[Tuple[str, tuple, np.dtype]]:
  """``(name, per-example shape, dtype)`` per model input, in
  ``model.inputs`` order (names: the Input layers', as in the file)."""
  inputs = getattr(model, "inputs", None)
  if inputs:
    names = list(getattr(model, "input_names", None) or ())
    if len(names) != len(inputs):
      names = [f"input_{i}" for i in range(len(inputs))]
    return [(n, tuple(t.shape[1:]), _np_dtype(t.dtype))
            for n, t in zip(names, inputs)]
  flat = tf.nest.flatten(_called_with(model))
  names = ["input"] if len(flat) == 1 else [f"input_{i}"
                                            for i in range(len(flat))]
  return [(n, tuple(x.shape[1:]), _np_dtype(x.dtype))
          for n, x in zip(names, flat)]


def _np_dtype(dtype) -> np.dtype:
  """A tensor dtype as numpy's (tf.DType, or Keras 3's dtype name)."""
  return np.dtype(getattr(dtype, "as_numpy_dtype", dtype))


def _called_with(model):
  """A subclassed model's input specs (:func:`compat.call_spec`).

  Raises:
    ValueError: the model was never called or built.
  """
  struct = compat.call_spec(model)
  if struct is None:
    raise ValueError(
        f"Model {model.name!r} has never been called or built, so its input "
        "shape is unknown. Fix: call it once on a batch (model(x)) or build "
        "it (model.build(input_shape)) before exporting.")
  return struct


def _struct_keys(model, n) -> list:
  """The dict key of each input for dict-input models, else Nones."""
  try:
    struct = model.input
  except (AttributeError, ValueError):
    return [None] * n
  if isinstance(struct, dict) and len(struct) == n:
    return sorted(struct)  # tf.nest order, = model.inputs order
  return [None] * n


def pack(model, xs: list):
  """Arrays in ``model.inputs`` order as the structure ``model`` is called
  with (one array, a list, or a dict)."""
  try:
    struct = model.input
  except (AttributeError, ValueError):
    struct = None
  if struct is not None and len(tf.nest.flatten(struct)) == len(xs):
    return tf.nest.pack_sequence_as(struct, list(xs))
  return xs[0] if len(xs) == 1 else list(xs)


def _vocab_sizes(model) -> List[Optional[int]]:
  """Per input: the ``input_dim`` of the Embedding(s) it feeds (the
  smallest), None if it feeds none. Integer inputs feeding no Embedding
  directly fall back to the smallest Embedding of the model."""
  embedding = compat.keras_of(model).layers.Embedding
  embeddings = [layer for layer in compat.flatten_layers(model)
                if isinstance(layer, embedding)]
  inputs = list(getattr(model, "inputs", None) or ())
  out = []
  for t in inputs:
    dims = []
    for e in embeddings:
      try:
        fed = tf.nest.flatten(e.input)
      except (AttributeError, RuntimeError, ValueError):  # shared / uncalled
        continue
      if any(f is t for f in fed):
        dims.append(int(e.input_dim))
    if not dims and "int" in str(t.dtype) and embeddings:
      dims = [int(e.input_dim) for e in embeddings]
    out.append(min(dims) if dims else None)
  return out or [None]


def _draw(model, specs, seed) -> tuple:
  """Random verification inputs: normal floats, token ids in ``[0, V)``
  for inputs feeding an Embedding of ``input_dim`` V."""
  rng = np.random.default_rng(seed)
  xs, notes = [], []
  for (name, shape, dtype), vocab in zip(specs, _vocab_sizes(model)):
    if any(d is None for d in shape):
      raise ValueError(
          f"Model input {name!r} of shape {(None,) + shape} has unknown "
          "dimensions, so no inputs can be drawn. Fix: pass "
          "representative_data=<inputs>.")
    size = (NUM_CHECK,) + shape
    if vocab is not None:
      xs.append(rng.integers(0, vocab, size).astype(dtype))
      notes.append(f"token ids in [0, {vocab})")
    elif np.issubdtype(dtype, np.integer) or dtype == np.bool_:
      raise ValueError(
          f"Input {name!r} holds {dtype} values that feed no Embedding, so no "
          "valid values can be drawn. Fix: pass representative_data=<inputs>.")
    else:
      xs.append(rng.standard_normal(size).astype(dtype))
  origin = "random normal" + (f", {notes[0]}" if notes else "")
  return xs, origin


def _is_array(a) -> bool:
  return not isinstance(a, (tuple, list, dict)) and hasattr(a, "shape")


def _x_part(data, n: int):
  """The inputs of ``data``: itself, or ``data[0]`` of an ``(x, y)`` pair.

  A tuple of ``n > 1`` arrays is the model's inputs; for one input a tuple
  is an ``(x, y)`` pair (and a list, an array).
  """
  if isinstance(data, dict):
    return data
  if isinstance(data, tuple) or (isinstance(data, list) and n > 1):
    if n > 1 and len(data) == n and all(_is_array(d) for d in data):
      return data
    return data[0]
  return data


def _flat_inputs(x, specs, keys) -> list:
  """``x`` (one array, a tuple/list, or a dict by input name or key) as one
  array per model input, in ``model.inputs`` order."""
  n, names = len(specs), [s[0] for s in specs]
  if isinstance(x, dict):
    out = []
    for name, key in zip(names, keys):
      if key is not None and key in x:
        out.append(x[key])
      elif name in x:
        out.append(x[name])
      else:
        raise ValueError(
            f"representative_data has no entry for input {key or name!r} "
            f"(keys {sorted(x)}). Fix: key it by input name: "
            f"{[k or nm for k, nm in zip(keys, names)]}.")
    return out
  flat = (tf.nest.flatten(x) if isinstance(x, tuple) or
          (isinstance(x, list) and n > 1) else [x])
  if len(flat) != n:
    raise ValueError(
        f"representative_data holds {len(flat)} input array(s) but the model "
        f"has {n} inputs {names}. Fix: pass a tuple of {n} arrays in input "
        "order, or a dict keyed by input name.")
  return flat


def _from_dataset(data, specs, keys) -> list:
  """Up to 8 batches of a dataset of inputs or ``(x, y)``: one array per
  input."""
  parts = [[] for _ in specs]
  for batch in data.take(8):
    xs = _flat_inputs(_x_part(batch, len(specs)), specs, keys)
    for p, a in zip(parts, xs):
      p.append(np.asarray(a))
  return [np.concatenate(p) for p in parts]


def as_inputs(data, model, seed) -> tuple:
  """Verification/calibration inputs, one array per model input (float
  inputs as float32, integer ones in their dtype), and their origin."""
  specs = input_specs(model)
  if data is None:
    return _draw(model, specs, seed)
  keys = _struct_keys(model, len(specs))
  if isinstance(data, tf.data.Dataset):
    xs = _from_dataset(data, specs, keys)
  else:
    xs = _flat_inputs(_x_part(data, len(specs)), specs, keys)
  out = []
  for (name, expected, dtype), a in zip(specs, xs):
    a = np.asarray(a, np.float32 if np.issubdtype(dtype, np.floating)
                   else dtype)
    if (a.ndim != len(expected) + 1 or any(
        d is not None and int(g) != int(d)
        for g, d in zip(a.shape[1:], expected))):
      where = f" for input {name!r}" if len(specs) > 1 else ""
      raise ValueError(
          f"representative_data (verification.verify's data) has per-example shape "
          f"{a.shape[1:]}{where} but the model expects {expected}. Fix: pass "
          "a batch of model inputs (array, (x, y) tuple or dataset of "
          "(x, y)).")
    out.append(a[:256])
  return out, "given"


def feedable(model, xs: list):
  """Arrays from :func:`as_inputs` as ``data`` that :func:`verification.verify` and
  :func:`conversion.convert` read back unchanged (one array, a tuple, a dict)."""
  del model  # several inputs: a tuple in model.inputs order, read by position
  return xs[0] if len(xs) == 1 else tuple(xs)
