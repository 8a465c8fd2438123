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
from typing import Optional

import numpy as np

from sbp_tf import files, masking
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
  for layer in masking.walk_layers(model):
    if isinstance(layer, masking.MaskedLayer) or (
        isinstance(layer, keras.layers.Wrapper) and
        hasattr(layer, "pruning_vars")):
      return True
  return False


def _plain(model, caller: str):
  """``model`` without mask wrappers (tfmot or MaskedLayer), zeros applied."""
  if not isinstance(model, keras.Model):
    raise TypeError(f"{caller} needs a keras.Model, got {type(model)}. Fix: "
                    "pass the Keras model (wrapped or stripped).")
  return masking.strip(model) if _is_wrapped(model) else model


def _check_quantize(quantize, representative_data) -> None:
  if quantize not in _QUANTIZE:
    raise ValueError(
        f"quantize={quantize!r} is not supported. Fix: use one of "
        f"{_QUANTIZE}.")
  if quantize == "int8" and representative_data is None:
    raise ValueError(
        "quantize='int8' calibrates activations on real inputs. Fix: pass "
        "representative_data=<a few hundred training inputs>.")


def _from_dataset(data) -> np.ndarray:
  xs = []
  for batch in data.take(8):
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    xs.append(np.asarray(x))
  return np.concatenate(xs)


def _as_array(data, model, seed) -> tuple:
  """Verification/calibration inputs as one float32 array, and their origin."""
  expected = tuple(model.input_shape[1:])
  if data is None:
    if any(d is None for d in expected):
      raise ValueError(
          f"Model input shape {model.input_shape} has unknown dimensions, so "
          "no inputs can be drawn. Fix: pass representative_data=<inputs>.")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((_NUM_CHECK,) + expected).astype(np.float32), (
        "random normal")
  if isinstance(data, tf.data.Dataset):
    data = _from_dataset(data)
  elif isinstance(data, tuple):
    data = data[0]  # an (x, y) pair
  x = np.asarray(data, np.float32)
  if x.shape[1:] != expected and all(d is not None for d in expected):
    raise ValueError(
        f"representative_data (verify's data) has per-example shape "
        f"{x.shape[1:]} but the model expects {expected}. Fix: pass a batch "
        "of model inputs (array, (x, y) tuple or dataset of (x, y)).")
  return x[:256], "given"


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
    calib, _ = _as_array(representative_data, plain, 0)
  converter = tf.lite.TFLiteConverter.from_keras_model(plain)
  converter.optimizations = (
      [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []) + (
          [tf.lite.Optimize.DEFAULT] if quantize is not None else [])
  if quantize == "int8":
    def representative():
      for i in range(min(len(calib), 100)):
        yield [calib[i:i + 1]]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  with warnings.catch_warnings():
    # Float I/O around int8 kernels is intended; TF warns it lacks stats.
    warnings.filterwarnings("ignore", message="Statistics for quantized")
    return converter.convert()


def _interpreter(content):
  """Interpreter with default delegates (XNNPACK), else builtin kernels."""
  with warnings.catch_warnings():
    # tf.lite.Interpreter warns it moves to ai_edge_litert; same runtime.
    warnings.filterwarnings("ignore", message=".*Interpreter is deprecated")
    return _make_interpreter(content)


def _make_interpreter(content):
  try:
    interp = tf.lite.Interpreter(model_content=content)
    interp.allocate_tensors()
    return interp, "default (XNNPACK)", None
  except (RuntimeError, ValueError) as e:
    interp = tf.lite.Interpreter(
        model_content=content,
        experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType
            .BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
    return interp, "builtin (XNNPACK refused the graph)", str(e)


def _run(interp, x) -> np.ndarray:
  """Runs the interpreter one example at a time; returns stacked outputs."""
  inp = interp.get_input_details()[0]
  out = interp.get_output_details()[0]
  ys = []
  for i in range(len(x)):
    xi = x[i:i + 1]
    if inp["dtype"] != np.float32:  # integer interface: quantize the input
      scale, zero = inp["quantization"]
      xi = np.round(xi / scale + zero).astype(inp["dtype"])
    interp.set_tensor(inp["index"], xi)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    if out["dtype"] != np.float32:
      scale, zero = out["quantization"]
      y = (y.astype(np.float32) - zero) * scale
    ys.append(np.array(y, np.float32))
  return np.concatenate(ys)


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
  return (f"TFLite output differs from Keras by {report['max_abs_diff']:.3g} "
          f"(tolerance {report['tolerance']:.3g}) for {where}. Fix: check the "
          "model/file pairing, or pass data= with in-range inputs for "
          "quantized files.")


def _compare(y_lite, y_keras) -> dict:
  """Max abs / relative difference and top-1 agreement of two outputs."""
  if y_lite.shape != y_keras.shape:
    raise ValueError(
        f"TFLite outputs have shape {y_lite.shape} but Keras gives "
        f"{y_keras.shape}: the content is not a conversion of this model. "
        "Fix: verify the bytes convert() returned for this model.")
  diff = float(np.abs(y_lite - y_keras).max())
  scale = float(np.abs(y_keras).max()) or 1.0
  top1 = float(np.mean(y_lite.argmax(-1) == y_keras.argmax(-1)))
  return {"max_abs_diff": diff, "rel_diff": diff / scale,
          "top1_agreement": top1, "scale": scale}


def verify(content: bytes, model, data=None, *, atol: Optional[float] = None,
           rtol: Optional[float] = None, seed=0, on_mismatch="warn") -> dict:
  """Runs ``content`` in the TFLite interpreter and compares it with ``model``.

  ``max_abs_diff = max |y_tflite - y_keras|`` over the inputs (first output,
  one example per invoke); ``rel_diff = max_abs_diff / max |y_keras|``;
  ``verified = max_abs_diff <= max(atol, rtol * max |y_keras|)``. Defaults:
  float files ``atol = rtol = 1e-4``; files with integer tensors (quantized)
  ``atol = 0, rtol = 0.1``.

  Usage::

      content = convert(model)
      r = verify(content, model, x[:64], on_mismatch="raise")
      print(r["max_abs_diff"], r["resolver"], r["num_sparse_tensors"])

  Args:
    content: ``.tflite`` bytes (e.g. from :func:`convert`).
    model: the Keras model it was converted from (wrapped or plain).
    data: inputs (array, ``(x, y)`` or dataset of ``(x, y)``; at most 256
      used); default 32 random normal inputs drawn with ``seed``.
    atol, rtol: tolerance, see above.
    seed: seed of the random inputs.
    on_mismatch: ``'warn'`` (default), ``'raise'`` (ValueError) or
      ``'ignore'`` when ``verified`` is False.

  Returns:
    dict with ``max_abs_diff, rel_diff, top1_agreement, tolerance, verified,
    inputs, resolver`` (``resolver_note`` when XNNPACK refused the graph),
    ``sparse_tensors`` (names of tensors stored sparse), ``num_sparse_tensors``.

  Raises:
    ValueError: output shapes differ (content of another model); bad data
      shape; ``on_mismatch='raise'`` and not verified.
  """
  if on_mismatch not in ("warn", "raise", "ignore"):
    raise ValueError(f"on_mismatch={on_mismatch!r} is not supported. Fix: "
                     "use 'warn', 'raise' or 'ignore'.")
  plain = _plain(model, "verify")
  x, origin = _as_array(data, plain, seed)
  interp, resolver, note = _interpreter(content)
  y_keras = np.asarray(plain(x, training=False), np.float32)
  report = _compare(_run(interp, x), y_keras)
  report["tolerance"] = _tolerance(interp, report.pop("scale"), atol, rtol)
  report["verified"] = bool(report["max_abs_diff"] <= report["tolerance"])
  sparse_names = sorted(d["name"] for d in interp.get_tensor_details()
                        if d.get("sparsity_parameters"))
  report.update(inputs=f"{origin} ({len(x)} examples)", resolver=resolver,
                sparse_tensors=sparse_names,
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
    x: inputs, the first example is used; default one random normal example
      of the interpreter's input shape, drawn with ``seed``.

  Returns:
    dict with ``latency_ms`` (median), ``latency_min_ms``, ``runs``,
    ``resolver``.
  """
  if int(runs) < 1:
    raise ValueError(f"runs={runs} times nothing. Fix: pass runs >= 1.")
  interp, resolver, _ = _interpreter(content)
  if x is None:
    shape = [1] + list(interp.get_input_details()[0]["shape"][1:])
    x = np.random.default_rng(seed).standard_normal(shape)
  one = np.asarray(x, np.float32)[:1]
  _run(interp, one)  # warm-up: first invoke pays for lazy allocations
  times = []
  for _ in range(int(runs)):
    t0 = time.perf_counter()
    _run(interp, one)
    times.append(time.perf_counter() - t0)
  return {"latency_ms": 1000.0 * float(np.median(times)),
          "latency_min_ms": 1000.0 * float(np.min(times)),
          "runs": int(runs), "resolver": resolver}


def _write_and_verify(plain, path, sparse, quantize, x, origin) -> tuple:
  """Converts, writes ``path`` atomically, verifies; (content, report)."""
  content = convert(plain, sparse=sparse, quantize=quantize,
                    representative_data=x)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  files.write_bytes(path, content)
  # The caller states the mode, so tolerances follow it, not the file.
  tols = (None, None) if quantize is None else (0.0, _QUANT_RTOL)
  check = verify(content, plain, x, atol=tols[0], rtol=tols[1],
                 on_mismatch="ignore")
  check["inputs"] = f"{origin} ({len(x)} examples)"
  if not check["verified"]:
    warnings.warn(_mismatch(check, path))
  report = {"path": str(path), "bytes": len(content), "sparse": bool(sparse),
            "quantize": quantize}
  report.update(check)
  return content, report


def _prepare(model, quantize, representative_data, seed, caller) -> tuple:
  _check_quantize(quantize, representative_data)
  plain = _plain(model, caller)
  x, origin = _as_array(representative_data, plain, seed)
  return plain, x, origin


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
    report["latency_ms"] = time_interpreter(content, time_runs,
                                            x=x)["latency_ms"]
  return report
