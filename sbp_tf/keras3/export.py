"""Export a pruned Keras 3 model to a sparse TFLite file, verified.

The Keras 3 model is traced into a concrete TensorFlow function
(``model(x, training=False)``, batch dimension free) and converted with
``tf.lite.TFLiteConverter.from_concrete_functions`` and
``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (pruned weight tensors stored in
a compressed sparse format; ``quantize='dynamic'`` adds int8 weights).
The report has the keys of :func:`sbp_tf.export.to_tflite`:
``max_abs_diff = max |y_tflite - y_keras|`` over the verification inputs,
``verified = max_abs_diff <= max(atol, rtol * max |y_keras|)`` (float:
``1e-4``; dynamic: ``atol 0, rtol 0.1``), ``size_ratio = bytes / dense
float32 TFLite bytes`` and ``latency_ms`` (median of one-example
invokes).

Usage::

    from sbp_tf.keras3 import export
    r = export.to_tflite(model, "model.tflite", representative_data=x[:32])
    print(r["size_ratio"], r["max_abs_diff"], r["num_sparse_tensors"])
"""

import os
import time
import warnings
from typing import Optional

import numpy as np

from sbp_tf import _env, files, tflite_runtime
from sbp_tf.keras3._runtime import check_model, require_tensorflow

_QUANTIZE = (None, "dynamic")
_FLOAT_TOL = 1e-4
_QUANT_RTOL = 0.1
_NUM_CHECK = 32

__all__ = ["convert", "to_tflite", "verify"]


def _check(model, quantize, caller):
  require_tensorflow("TFLite export")
  check_model(model, caller)
  if quantize not in _QUANTIZE:
    raise ValueError(f"quantize={quantize!r} is not supported on the Keras 3 "
                     f"path. Fix: use one of {_QUANTIZE}.")
  if len(model.inputs) != 1 or len(model.outputs) != 1:
    raise ValueError(f"keras3.export handles one input and one output; model "
                     f"{model.name!r} has {len(model.inputs)} and "
                     f"{len(model.outputs)}. Fix: export a single-input, "
                     "single-output model.")


def convert(model, *, sparse: bool = True,
            quantize: Optional[str] = None) -> bytes:
  """A Keras 3 model as TFLite flatbuffer bytes; writes nothing.

  Raises:
    ValueError: unknown ``quantize``, several inputs or outputs.
    NotImplementedError: not the TensorFlow backend.
  """
  _check(model, quantize, "keras3.export.convert")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = model.inputs[0]
  spec = tf.TensorSpec([None] + list(x.shape[1:]), tf.as_dtype(x.dtype))
  fn = tf.function(lambda t: model(t, training=False), input_signature=[spec],
                   autograph=False)
  # The converter freezes the variables it finds on this trackable; Keras 3
  # models do not expose their tf.Variables to it (a NaN file otherwise).
  holder = tf.Module()
  holder.variables_ = [v.value for v in model.variables]
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [fn.get_concrete_function()], holder)
  converter.optimizations = (
      [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []) + (
          [tf.lite.Optimize.DEFAULT] if quantize else [])
  with _env.quiet_stderr():  # the converter's C++ log lines
    return converter.convert()


def _inputs(model, data, seed) -> tuple:
  expected = tuple(int(d) for d in model.inputs[0].shape[1:])
  if data is None:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((_NUM_CHECK,) + expected).astype(np.float32),
            "random normal")
  x = np.asarray(data[0] if isinstance(data, tuple) else data, np.float32)
  if x.shape[1:] != expected:
    raise ValueError(f"representative_data has per-example shape "
                     f"{x.shape[1:]} but the model expects {expected}. Fix: "
                     "pass a batch of model inputs (array or (x, y)).")
  return x[:256], "given"


def _interpreter(content):
  return tflite_runtime.interpreter(content)  # LiteRT, else tf.lite


def _invoke(interp, x) -> np.ndarray:
  """TFLite outputs of ``x``, one example per invoke."""
  inp = interp.get_input_details()[0]["index"]
  out = interp.get_output_details()[0]["index"]
  ys = []
  for i in range(len(x)):
    interp.set_tensor(inp, x[i:i + 1])
    interp.invoke()
    ys.append(np.array(interp.get_tensor(out), np.float32))
  return np.concatenate(ys)


def verify(content: bytes, model, data=None, *, quantize=None,
           seed: int = 0) -> dict:
  """Runs ``content`` in the TFLite interpreter and compares it with Keras.

  Returns:
    dict with ``max_abs_diff, rel_diff, top1_agreement, tolerance, verified,
    inputs, sparse_tensors, num_sparse_tensors``.
  """
  x, origin = _inputs(model, data, seed)
  interp = _interpreter(content)
  y_lite = _invoke(interp, x)
  y_keras = np.asarray(model.predict(x, verbose=0, batch_size=64), np.float32)
  diff = float(np.abs(y_lite - y_keras).max())
  scale = float(np.abs(y_keras).max()) or 1.0
  tol = (max(_FLOAT_TOL, _FLOAT_TOL * scale) if quantize is None
         else _QUANT_RTOL * scale)
  sparse = sorted(d["name"] for d in interp.get_tensor_details()
                  if d.get("sparsity_parameters"))
  return {"max_abs_diff": diff, "rel_diff": diff / scale,
          "top1_agreement": float(np.mean(
              y_lite.argmax(-1) == y_keras.argmax(-1))),
          "tolerance": tol, "verified": bool(diff <= tol),
          "inputs": f"{origin} ({len(x)} examples)",
          "sparse_tensors": sparse, "num_sparse_tensors": len(sparse)}


def to_tflite(model, path, *, sparse: bool = True,
              quantize: Optional[str] = None, representative_data=None,
              seed: int = 0, compare_dense: bool = True,
              time_runs: int = 20) -> dict:
  """Converts a Keras 3 model to TFLite at ``path``, verifies it, reports sizes.

  Args:
    model: a Keras 3 model (masked or not: constraints are not part of the
      forward pass; pruned weights are exported as the zeros they are).
    path: output ``.tflite`` file (written atomically).
    sparse: store pruned weights sparse (``EXPERIMENTAL_SPARSITY``).
    quantize: None (float32) or ``'dynamic'`` (int8 weights).
    representative_data: verification inputs (array or ``(x, y)``); default
      32 random normal inputs drawn with ``seed``.
    compare_dense: also convert the dense float32 reference for
      ``size_ratio`` (else ``dense_float_bytes = size_ratio = None``).
    time_runs: timed interpreter invokes; 0 gives ``latency_ms = None``.

  Returns:
    dict with ``path, bytes, dense_float_bytes, size_ratio, sparse,
    quantize, latency_ms`` and :func:`verify`'s keys.

  Example::

    r = to_tflite(model, "m.tflite", time_runs=0)
    assert r["verified"], r
  """
  content = convert(model, sparse=sparse, quantize=quantize)
  x, _ = _inputs(model, representative_data, seed)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  files.write_bytes(path, content)
  report = {"path": str(path), "bytes": len(content), "sparse": bool(sparse),
            "quantize": quantize, "dense_float_bytes": None,
            "size_ratio": None, "latency_ms": None}
  report.update(verify(content, model, representative_data, quantize=quantize,
                       seed=seed))
  if not report["verified"]:
    warnings.warn(f"TFLite output differs from Keras by "
                  f"{report['max_abs_diff']:.3g} (tolerance "
                  f"{report['tolerance']:.3g}) for {path}. Fix: check the "
                  "model's layers for ops TFLite computes differently.")
  if compare_dense:
    dense = len(content) if not sparse and quantize is None else len(
        convert(model, sparse=False))
    report.update(dense_float_bytes=dense, size_ratio=len(content) / dense)
  if time_runs:
    report["latency_ms"] = _latency_ms(content, x[:1], int(time_runs))
  return report


def _latency_ms(content, x, runs) -> float:
  """Median ms of ``runs`` one-example invokes, after one warm-up."""
  interp = _interpreter(content)
  _invoke(interp, x)
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    _invoke(interp, x)
    times.append(time.perf_counter() - t0)
  return 1000.0 * float(np.median(times))
