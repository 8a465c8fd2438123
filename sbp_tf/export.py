"""Export a pruned Keras model to a sparse (optionally quantized) TFLite file.

The stripped model is converted with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``
so TFLite stores pruned weight tensors in a compressed sparse format (plus
quantization on request). The export is split into steps, each usable alone:

- :func:`convert`: model -> ``.tflite`` bytes (strips mask wrappers);
- :func:`verify`: runs the bytes in the TFLite interpreter and compares the
  outputs with Keras on the same inputs;
- :func:`size_report`: size relative to a dense float32 conversion (a second,
  full conversion, so only when asked);
- :func:`time_interpreter`: median interpreter latency (only when asked).

Two compositions: :func:`export_for_run` (convert, atomic write, verify: the
cheap one for training runs) and :func:`to_tflite` (all four steps).

Usage::

    report = sbp_tf.export.to_tflite(pruned, "model.tflite",
                                     representative_data=x_test[:64])
    print(report["size_ratio"], report["max_abs_diff"], report["sparse_tensors"])

    report = sbp_tf.export.export_for_run(pruned, "run/model.tflite")
    assert report["verified"], report
"""

import os
import time
import warnings
from typing import List, Optional, Tuple

import numpy as np

from sbp_tf import _env, compat, files, masking, tflite_runtime
from sbp_tf.pruning import precision
from sbp_tf.compat import keras, tf

__all__ = ["convert", "verify", "size_report", "time_interpreter",
           "export_for_run", "to_tflite"]

_QUANTIZE = (None, "dynamic", "int8")
_FLOAT_ATOL = 1e-4  # float files: |diff| <= 1e-4 * max(1, max|y_keras|)
_QUANT_RTOL = 0.1   # quantized files: |diff| <= 0.1 * max|y_keras|
_NUM_CHECK = 32  # inputs used for verification when none are given
_LATENCY_RUNS = 20
_INT_DTYPES = (np.int8, np.uint8, np.int16)


def _is_wrapped(model) -> bool:
  if compat.keras_family(model) == "keras3":  # masks are constraints there
    return False
  for layer in masking.walk_layers(model):
    if isinstance(layer, masking.MaskedLayer) or (
        isinstance(layer, keras.layers.Wrapper) and
        hasattr(layer, "pruning_vars")):
      return True
  return False


def _plain(model, caller: str):
  """``model`` without mask wrappers (tfmot or MaskedLayer), zeros applied,
  in float32 (a mixed-precision model's float32 copy, see
  :func:`sbp_tf.pruning.precision.in_float32`)."""
  K = compat.keras_of(model)
  if not isinstance(model, K.Model):
    raise TypeError(f"{caller} needs a keras.Model, got {type(model)}. Fix: "
                    "pass the Keras model (wrapped or stripped).")
  return precision.in_float32(
      masking.strip(model) if _is_wrapped(model) else model, K, caller)


def _check_quantize(quantize, representative_data) -> None:
  if quantize not in _QUANTIZE:
    raise ValueError(
        f"quantize={quantize!r} is not supported. Fix: use one of "
        f"{_QUANTIZE}.")
  if quantize == "int8" and representative_data is None:
    raise ValueError(
        "quantize='int8' calibrates activations on real inputs. Fix: pass "
        "representative_data=<a few hundred training inputs>.")


def _input_specs(model) -> List[Tuple[str, tuple, np.dtype]]:
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


def _pack(model, xs: list):
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
    size = (_NUM_CHECK,) + shape
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


def _as_inputs(data, model, seed) -> tuple:
  """Verification/calibration inputs, one array per model input (float
  inputs as float32, integer ones in their dtype), and their origin."""
  specs = _input_specs(model)
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
          f"representative_data (verify's data) has per-example shape "
          f"{a.shape[1:]}{where} but the model expects {expected}. Fix: pass "
          "a batch of model inputs (array, (x, y) tuple or dataset of "
          "(x, y)).")
    out.append(a[:256])
  return out, "given"


def convert(model, *, sparse=True, quantize: Optional[str] = None,
            representative_data=None) -> bytes:
  """Converts ``model`` to TFLite flatbuffer bytes; writes nothing.

  Mask wrappers (tfmot, :class:`sbp_tf.masking.MaskedLayer`) are stripped
  first. ``sparse`` adds ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (pruned
  weights stored in a compressed sparse format); ``quantize='dynamic'`` stores
  int8 weights, ``'int8'`` also int8 activations, calibrated on up to 100
  examples of ``representative_data`` (required then; checked otherwise).

  Usage::

      content = convert(model, quantize="int8", representative_data=x[:256])
      sbp_tf.files.write_bytes("m.tflite", content)

  Raises:
    ValueError: unknown ``quantize``; ``'int8'`` without data; bad data shape.
    TypeError: ``model`` is not a ``keras.Model``.
  """
  _check_quantize(quantize, representative_data)
  plain = _plain(model, "convert")
  calib = None
  if representative_data is not None:  # validates the shape in every mode
    calib, _ = _as_inputs(representative_data, plain, 0)
  keras3 = compat.keras_family(plain) == "keras3"
  try:
    return _convert_with(
        _traced_converter(plain, None) if keras3 else
        tf.lite.TFLiteConverter.from_keras_model(plain),
        plain, sparse, quantize, calib)
  except Exception as e:  # pylint: disable=broad-except
    if "TensorList" not in str(e):
      raise
  # Recurrent layers (LSTM/GRU/SimpleRNN) loop over a TensorList whose
  # element shape holds the batch size: TFLite needs it static, so the
  # file takes one example per call (as verify and time_interpreter feed).
  return _convert_with(_traced_converter(plain, 1), plain, sparse, quantize,
                       calib)


def _traced_converter(plain, batch):
  """A converter of ``plain`` traced as a function of its inputs (batch
  size ``batch``, None: free), with the model's input and output names as
  the signature's. Keras 3 models convert this way (the converter freezes
  the variables of the trackable it is given, and a Keras 3 model does not
  expose its ``tf.Variable``s to it: a holder module does)."""
  specs = _input_specs(plain)
  outs = _output_names(plain, len(tf.nest.flatten(plain.outputs))
                       if getattr(plain, "outputs", None) else 1)

  def serve(**xs):
    ys = tf.nest.flatten(plain(_pack(plain, [xs[n] for n, _, _ in specs]),
                               training=False))
    return dict(zip(outs, ys))

  concrete = tf.function(serve, autograph=False).get_concrete_function(**{
      n: tf.TensorSpec((batch,) + shape, tf.as_dtype(dtype), name=n)
      for n, shape, dtype in specs})
  holder = plain
  if compat.keras_family(plain) == "keras3":
    holder = tf.Module()
    holder.variables_ = [v.value for v in plain.variables]
  return tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)


def _convert_with(converter, plain, sparse, quantize, calib) -> bytes:
  """``converter`` set for ``sparse``/``quantize`` (int8: calibrated on
  ``calib``), run."""
  converter.optimizations = (
      [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []) + (
          [tf.lite.Optimize.DEFAULT] if quantize is not None else [])
  if quantize == "int8":
    names = [spec[0] for spec in _input_specs(plain)]

    def representative():
      for i in range(min(len(calib[0]), 100)):
        if len(calib) == 1:
          yield [calib[0][i:i + 1]]
        else:  # by the signature's input names (= Input layer names)
          yield {n: a[i:i + 1] for n, a in zip(names, calib)}
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  with warnings.catch_warnings(), _env.quiet_stderr():
    # Float I/O around int8 kernels is intended; TF warns it lacks stats.
    # The converter's C++ log lines ignore TF_CPP_MIN_LOG_LEVEL.
    warnings.filterwarnings("ignore", message="Statistics for quantized")
    return converter.convert()


def _interpreter(content):
  """Interpreter (LiteRT, else tf.lite: sbp_tf.tflite_runtime) with default
  delegates (XNNPACK), else builtin kernels."""
  try:
    return tflite_runtime.interpreter(content), "default (XNNPACK)", None
  except (RuntimeError, ValueError) as e:
    return (tflite_runtime.interpreter(content, builtin_only=True),
            "builtin (XNNPACK refused the graph)", str(e))


def _to_file_dtype(x, detail):
  """``x`` in an input tensor's dtype: quantized (``scale > 0``) for an
  integer interface of a quantized file, cast as is otherwise (token ids)."""
  dtype = detail["dtype"]
  scale, zero = detail["quantization"]
  if not np.issubdtype(dtype, np.floating) and scale:
    return np.round(x / scale + zero).astype(dtype)
  return np.asarray(x).astype(dtype)


def _from_file_dtype(y, detail) -> np.ndarray:
  scale, zero = detail["quantization"]
  if not np.issubdtype(detail["dtype"], np.floating) and scale:
    return (y.astype(np.float32) - zero) * scale
  return np.array(y, np.float32)


class _Runner:
  """One-example invokes of a ``.tflite`` file, inputs and outputs by name.

  Names are the file's signature names (Keras: the Input layers' and the
  output layers' names); a file without a signature uses its tensors in
  file order.
  """

  def __init__(self, interp):
    sigs = interp.get_signature_list()
    if sigs:
      key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
      self._sig = interp.get_signature_runner(key)
      self.in_details = self._sig.get_input_details()
      self.out_details = self._sig.get_output_details()
      self.inputs = list(sigs[key]["inputs"])
      self.outputs = list(sigs[key]["outputs"])
    else:
      self._sig = None
      ins, outs = interp.get_input_details(), interp.get_output_details()
      self.inputs = [d["name"] for d in ins]
      self.outputs = [d["name"] for d in outs]
      self.in_details = dict(zip(self.inputs, ins))
      self.out_details = dict(zip(self.outputs, outs))
    self._interp = interp

  def invoke(self, feeds: dict) -> dict:
    """``feeds``: input name -> one example (batch 1); returns name -> y."""
    xs = {n: _to_file_dtype(feeds[n], self.in_details[n]) for n in self.inputs}
    if self._sig is not None:
      ys = self._sig(**xs)
    else:
      for n in self.inputs:
        self._interp.set_tensor(self.in_details[n]["index"], xs[n])
      self._interp.invoke()
      ys = {n: self._interp.get_tensor(self.out_details[n]["index"])
            for n in self.outputs}
    return {n: _from_file_dtype(ys[n], self.out_details[n])
            for n in self.outputs}

  def run(self, feeds: dict) -> dict:
    """One invoke per example of ``feeds`` (name -> batch); stacked."""
    count = len(next(iter(feeds.values())))
    ys = {n: [] for n in self.outputs}
    for i in range(count):
      # Fused recurrent ops (UNIDIRECTIONAL_SEQUENCE_LSTM) keep their state
      # in variable tensors across invokes: every example starts from zero
      # state, as a Keras call does.
      self._interp.reset_all_variables()
      out = self.invoke({n: a[i:i + 1] for n, a in feeds.items()})
      for n in self.outputs:
        ys[n].append(out[n])
    return {n: np.concatenate(v) for n, v in ys.items()}

  def feeds(self, names: list, xs: list) -> dict:
    """Model inputs (by Input layer name, ``xs`` in the same order) keyed
    by the file's input names."""
    if sorted(names) == sorted(self.inputs):
      return dict(zip(names, xs))
    if len(xs) == len(self.inputs) == 1:
      return {self.inputs[0]: xs[0]}
    raise ValueError(
        f"The file's inputs {self.inputs} are not the model's {names}: the "
        "content is not a conversion of this model. Fix: verify the bytes "
        "convert() returned for this model.")

  def output_names(self, names: list) -> list:
    """The file's output name for each model output name."""
    if sorted(names) == sorted(self.outputs):
      return list(names)
    if len(names) == len(self.outputs) == 1:
      return list(self.outputs)
    raise ValueError(
        f"The file's outputs {self.outputs} are not the model's {names}: the "
        "content is not a conversion of this model. Fix: verify the bytes "
        "convert() returned for this model.")


def _output_names(model, n: int) -> list:
  names = list(getattr(model, "output_names", None) or ())
  return names if len(names) == n else [f"output_{i}" for i in range(n)]


def _tolerance(interp, scale, atol, rtol) -> float:
  """``max(atol, rtol * scale)``; defaults chosen by the file's weights."""
  quantized = any(d["dtype"] in _INT_DTYPES
                  for d in interp.get_tensor_details())
  if atol is None:
    atol = 0.0 if quantized else _FLOAT_ATOL
  if rtol is None:
    # Quantization error is ~1% of the output range per int8 layer; a
    # loose relative bound still catches a broken conversion.
    rtol = _QUANT_RTOL if quantized else _FLOAT_ATOL
  return max(float(atol), float(rtol) * scale)


def _mismatch(report, where) -> str:
  worst = report.get("worst_output")
  of = f" (output {worst!r})" if worst and len(report.get("outputs", {})) > 1 \
      else ""
  return (f"TFLite output{of} differs from Keras by "
          f"{report['max_abs_diff']:.3g} (tolerance {report['tolerance']:.3g}) "
          f"for {where}. Fix: check the model/file pairing, or pass data= "
          "with in-range inputs for quantized files.")


def _compare(y_lite, y_keras) -> dict:
  """Max abs / relative difference and top-1 agreement of two outputs."""
  if y_lite.shape != y_keras.shape:
    raise ValueError(
        f"TFLite outputs have shape {y_lite.shape} but Keras gives "
        f"{y_keras.shape}: the content is not a conversion of this model. "
        "Fix: verify the bytes convert() returned for this model.")
  diff = float(np.abs(y_lite - y_keras).max()) if y_keras.size else 0.0
  scale = (float(np.abs(y_keras).max()) if y_keras.size else 0.0) or 1.0
  top1 = float(np.mean(y_lite.argmax(-1) == y_keras.argmax(-1)))
  return {"max_abs_diff": diff, "rel_diff": diff / scale,
          "top1_agreement": top1, "scale": scale}


def _summary(per: dict, shapes: dict) -> dict:
  """The whole-model fields of :func:`verify` from its per-output ones:
  the largest differences, the smallest top-1 agreement over outputs with
  several classes (else the first output's), verified iff every output is."""
  worst = max(per, key=lambda k: per[k]["max_abs_diff"] - per[k]["tolerance"])
  classes = [k for k in per if len(shapes[k]) > 1 and shapes[k][-1] > 1]
  top1 = min(per[k]["top1_agreement"] for k in (classes or list(per)[:1]))
  return {"max_abs_diff": max(r["max_abs_diff"] for r in per.values()),
          "rel_diff": max(r["rel_diff"] for r in per.values()),
          "top1_agreement": top1, "tolerance": per[worst]["tolerance"],
          "verified": all(r["verified"] for r in per.values()),
          "worst_output": worst}


def verify(content: bytes, model, data=None, *, atol: Optional[float] = None,
           rtol: Optional[float] = None, seed=0, on_mismatch="warn") -> dict:
  """Runs ``content`` in the TFLite interpreter and compares it with ``model``.

  For every output ``o``: ``max_abs_diff_o = max |y_tflite - y_keras|`` over
  the inputs (one example per invoke), ``rel_diff_o = max_abs_diff_o /
  max |y_keras,o|``, ``verified_o = max_abs_diff_o <= max(atol, rtol *
  max |y_keras,o|)``; the report's ``max_abs_diff``/``rel_diff`` are the
  largest over outputs and ``verified`` holds iff every output's does.
  Defaults: float files ``atol = rtol = 1e-4``; files with integer tensors
  (quantized) ``atol = 0, rtol = 0.1``. Every input of the model is fed
  (by name); integer inputs (token ids) are fed as they are.

  Usage::

      content = convert(model)
      r = verify(content, model, x[:64], on_mismatch="raise")
      print(r["max_abs_diff"], r["resolver"], r["num_sparse_tensors"])
      r["outputs"]["cls"]["max_abs_diff"]      # per output

  Args:
    content: ``.tflite`` bytes (e.g. from :func:`convert`).
    model: the Keras model it was converted from (wrapped or plain).
    data: inputs (array; for several inputs a tuple or dict of arrays; an
      ``(x, y)`` pair or a dataset of ``(x, y)``; at most 256 used);
      default 32 random inputs drawn with ``seed``: normal floats, and
      token ids in ``[0, input_dim)`` for inputs feeding an Embedding.
    atol, rtol: tolerance, see above.
    seed: seed of the random inputs.
    on_mismatch: ``'warn'`` (default), ``'raise'`` (ValueError) or
      ``'ignore'`` when ``verified`` is False.

  Returns:
    dict with ``max_abs_diff, rel_diff, top1_agreement, tolerance, verified,
    worst_output, outputs`` (output name -> ``max_abs_diff, rel_diff,
    top1_agreement, tolerance, verified``), ``inputs, resolver``
    (``resolver_note`` when XNNPACK refused the graph), ``runtime``
    (``'ai_edge_litert'``, or ``'tf.lite'`` without LiteRT), ``sparse_tensors``
    (names of tensors stored sparse), ``num_sparse_tensors``.

  Raises:
    ValueError: output shapes or names differ (content of another model);
      bad data shape; ``on_mismatch='raise'`` and not verified.
  """
  if on_mismatch not in ("warn", "raise", "ignore"):
    raise ValueError(f"on_mismatch={on_mismatch!r} is not supported. Fix: "
                     "use 'warn', 'raise' or 'ignore'.")
  plain = _plain(model, "verify")
  xs, origin = _as_inputs(data, plain, seed)
  interp, resolver, note = _interpreter(content)
  runner = _Runner(interp)
  y_keras = [np.asarray(y, np.float32) for y in
             tf.nest.flatten(plain(_pack(plain, xs), training=False))]
  names = _output_names(plain, len(y_keras))
  y_lite = runner.run(runner.feeds([s[0] for s in _input_specs(plain)], xs))
  per, shapes = {}, {}
  for name, file_name, yk in zip(names, runner.output_names(names), y_keras):
    r = _compare(y_lite[file_name], yk)
    r["tolerance"] = _tolerance(interp, r.pop("scale"), atol, rtol)
    r["verified"] = bool(r["max_abs_diff"] <= r["tolerance"])
    per[name], shapes[name] = r, yk.shape
  report = _summary(per, shapes)
  report["outputs"] = per
  sparse_names = sorted(d["name"] for d in interp.get_tensor_details()
                        if d.get("sparsity_parameters"))
  report.update(inputs=f"{origin} ({len(xs[0])} examples)", resolver=resolver,
                runtime=tflite_runtime.NAME, sparse_tensors=sparse_names,
                num_sparse_tensors=len(sparse_names))
  if note:
    report["resolver_note"] = note
  if not report["verified"] and on_mismatch == "raise":
    raise ValueError(_mismatch(report, "the given content"))
  if not report["verified"] and on_mismatch == "warn":
    warnings.warn(_mismatch(report, "the given content"))
  return report


def size_report(content: bytes, model, *,
                dense_float_bytes: Optional[int] = None) -> dict:
  """Size of ``content`` relative to the dense float32 TFLite file of ``model``.

  ``size_ratio = len(content) / dense_float_bytes``, where the reference is
  ``model`` converted with no sparsity and no quantization. That is a second
  full conversion; pass ``dense_float_bytes`` when it is known (e.g.
  ``len(content)`` for a dense float file) to skip it.

  Usage::

      content = convert(pruned)                     # sparse float
      print(size_report(content, pruned)["size_ratio"])   # e.g. 0.17 at 90%

  Returns:
    dict with ``bytes, dense_float_bytes, size_ratio``.
  """
  if dense_float_bytes is None:
    dense_float_bytes = len(convert(model, sparse=False, quantize=None))
  return {"bytes": len(content), "dense_float_bytes": int(dense_float_bytes),
          "size_ratio": len(content) / dense_float_bytes}


def time_interpreter(content: bytes, runs: int = _LATENCY_RUNS, *, x=None,
                     seed=0) -> dict:
  """Median wall time of one interpreter invoke on one example (batch 1).

  One warm-up invoke, then ``runs`` timed ones (set/invoke/get, including
  int8 input quantization for integer interfaces).

  Usage::

      t = time_interpreter(convert(model), runs=50, x=x_test[:1])
      print(t["latency_ms"], t["resolver"])

  Args:
    content: ``.tflite`` bytes.
    runs: number of timed invokes (>= 1).
    x: inputs, the first example is used: an array (one input), a dict by
      input name, or a list/tuple in the file's input order; default one
      random normal example per float input and token id 0 for integer
      inputs, drawn with ``seed``.

  Returns:
    dict with ``latency_ms`` (median), ``latency_min_ms``, ``runs``,
    ``resolver``.
  """
  if int(runs) < 1:
    raise ValueError(f"runs={runs} times nothing. Fix: pass runs >= 1.")
  interp, resolver, _ = _interpreter(content)
  runner = _Runner(interp)
  if x is None:
    rng = np.random.default_rng(seed)
    feeds = {}
    for n in runner.inputs:
      d = runner.in_details[n]
      shape = [1] + list(d["shape"][1:])
      # Integer inputs are token ids (id 0 is always valid) unless the file
      # quantizes them.
      feeds[n] = (np.zeros(shape) if not np.issubdtype(d["dtype"], np.floating)
                  and not d["quantization"][0] else rng.standard_normal(shape))
  elif isinstance(x, dict):
    feeds = dict(x)
  elif isinstance(x, (list, tuple)):
    feeds = dict(zip(runner.inputs, x))
  else:
    feeds = {runner.inputs[0]: x}
  one = {n: np.asarray(feeds[n])[:1] for n in runner.inputs}
  one = {n: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating)
             else v) for n, v in one.items()}
  runner.invoke(one)  # warm-up: first invoke pays for lazy allocations
  times = []
  for _ in range(int(runs)):
    t0 = time.perf_counter()
    runner.invoke(one)
    times.append(time.perf_counter() - t0)
  return {"latency_ms": 1000.0 * float(np.median(times)),
          "latency_min_ms": 1000.0 * float(np.min(times)),
          "runs": int(runs), "resolver": resolver}


def _write_and_verify(plain, path, sparse, quantize, x, origin) -> tuple:
  """Converts, verifies, writes ``path`` atomically; (content, report).

  If the sparse encoding's outputs do not verify while the same model
  converted dense does, the dense file is written instead and the report
  says why (``sparse_fallback``): TensorFlow 2.21's converter mis-encodes
  some sparsity patterns of fully connected kernels (found on a 70x16 kernel
  with 24 nonzeros), and a wrong file must never be written as a verified
  one.
  """
  # The caller states the mode, so tolerances follow it, not the file.
  tols = (None, None) if quantize is None else (0.0, _QUANT_RTOL)

  def attempt(sp):
    content = convert(plain, sparse=sp, quantize=quantize,
                      representative_data=_feedable(plain, x))
    return content, verify(content, plain, _feedable(plain, x),
                           atol=tols[0], rtol=tols[1], on_mismatch="ignore")

  content, check = attempt(sparse)
  fallback = None
  if sparse and not check["verified"]:
    dense_content, dense_check = attempt(False)
    if dense_check["verified"]:
      fallback = (f"the sparse encoding's outputs differ from Keras "
                  f"(max abs diff {check['max_abs_diff']:.3g}); wrote the "
                  "dense encoding, which verifies")
      warnings.warn(f"{path}: {fallback}.")
      content, check, sparse = dense_content, dense_check, False
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  files.write_bytes(path, content)
  check["inputs"] = f"{origin} ({len(x[0])} examples)"
  if not check["verified"]:
    warnings.warn(_mismatch(check, path))
  report = {"path": str(path), "bytes": len(content), "sparse": bool(sparse),
            "quantize": quantize, "sparse_fallback": fallback}
  report.update(check)
  return content, report


def _prepare(model, quantize, representative_data, seed, caller) -> tuple:
  _check_quantize(quantize, representative_data)
  plain = _plain(model, caller)
  x, origin = _as_inputs(representative_data, plain, seed)
  return plain, x, origin


def _feedable(model, xs: list):
  """Arrays from :func:`_as_inputs` as ``data`` that :func:`verify` and
  :func:`convert` read back unchanged (one array, a tuple, a dict)."""
  del model  # several inputs: a tuple in model.inputs order, read by position
  return xs[0] if len(xs) == 1 else tuple(xs)


def export_for_run(model, path, *, sparse=True, quantize: Optional[str] = None,
                   representative_data=None, seed=0) -> dict:
  """The cheap export for training runs: convert, write atomically, verify.

  Same conversion, file and verification as :func:`to_tflite`, without the
  dense reference conversion (no ``size_ratio``) and without timing. A file
  that fails verification is still written; the report says
  ``verified: False`` and a warning names the file.

  Usage::

      r = export_for_run(sbp_tf.tfmot.strip(model), workdir / "model.tflite")
      results["tflite"] = {k: r[k] for k in ("path", "bytes", "verified")}

  Returns:
    dict with ``path, bytes, sparse, quantize`` and :func:`verify`'s keys.

  Raises:
    ValueError, TypeError: as :func:`to_tflite`, before anything is written.
  """
  plain, x, origin = _prepare(model, quantize, representative_data, seed,
                              "export_for_run")
  return _write_and_verify(plain, path, sparse, quantize, x, origin)[1]


def to_tflite(model, path, *, sparse=True, quantize: Optional[str] = None,
              representative_data=None, seed=0, compare_dense=True,
              time_runs: int = _LATENCY_RUNS) -> dict:
  """Converts ``model`` to TFLite at ``path``, verifies it, reports sizes.

  :func:`export_for_run` plus :func:`size_report` (``size_ratio = file bytes
  / dense float32 TFLite bytes``) and :func:`time_interpreter` on the first
  verification input. ``max_abs_diff = max |y_tflite - y_keras|``.

  Usage::

      r = to_tflite(model, "m.tflite", quantize="dynamic", representative_data=x)
      assert r["verified"], r
      r = to_tflite(model, "m.tflite", compare_dense=False, time_runs=0)

  Args:
    model: Keras model, wrapped (tfmot / MaskedLayer) or plain.
    path: output ``.tflite`` file (written atomically).
    sparse: store pruned weights sparse (``EXPERIMENTAL_SPARSITY``).
    quantize: None (float32), ``'dynamic'`` (int8 weights) or ``'int8'``
      (int8 weights and activations; needs ``representative_data``).
    representative_data: model inputs (array, ``(x, y)`` or dataset of
      ``(x, y)`` batches) for verification and int8 calibration; default
      random normal inputs (float and dynamic only).
    seed: seed of the random verification inputs.
    compare_dense: convert the dense float reference for ``size_ratio``;
      False gives ``dense_float_bytes = size_ratio = None``.
    time_runs: timed interpreter invokes; 0 gives ``latency_ms = None``.

  Returns:
    dict with ``path, bytes, dense_float_bytes, size_ratio, sparse,
    quantize, latency_ms`` (median ms per image, batch 1) and
    :func:`verify`'s keys.

  Raises:
    ValueError: unknown ``quantize``; ``'int8'`` without data; bad data shape.
    TypeError: ``model`` is not a ``keras.Model``.
  """
  plain, x, origin = _prepare(model, quantize, representative_data, seed,
                              "to_tflite")
  content, report = _write_and_verify(plain, path, sparse, quantize, x, origin)
  report.update(dense_float_bytes=None, size_ratio=None, latency_ms=None)
  if compare_dense:
    known = len(content) if not sparse and quantize is None else None
    report.update(size_report(content, plain, dense_float_bytes=known))
  if time_runs:
    names = [spec[0] for spec in _input_specs(plain)]
    report["latency_ms"] = time_interpreter(
        content, time_runs, x=x[0] if len(x) == 1 else dict(zip(names, x))
    )["latency_ms"]
  return report
