"""Export a pruned Keras model to a sparse (optionally quantized) TFLite file.

The stripped model is converted with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``
so TFLite stores pruned weight tensors in a compressed sparse format (plus
quantization on request), then the file is checked against Keras on the same
inputs and measured.

Usage::

    report = sbp_tf.export.to_tflite(pruned, "model.tflite",
                                     representative_data=x_test[:64])
    print(report["size_ratio"], report["max_abs_diff"], report["sparse_tensors"])
"""

import os
import time
import warnings
from typing import Optional

import numpy as np

from sbp_tf import masking
from sbp_tf.compat import keras, tf

__all__ = ["to_tflite"]

_QUANTIZE = (None, "dynamic", "int8")
_FLOAT_ATOL = 1e-4
_NUM_CHECK = 32  # inputs used for verification when none are given
_LATENCY_RUNS = 20


def _is_wrapped(model) -> bool:
  for layer in masking.walk_layers(model):
    if isinstance(layer, masking.MaskedLayer) or (
        isinstance(layer, keras.layers.Wrapper) and
        hasattr(layer, "pruning_vars")):
      return True
  return False


def _as_array(data, model, seed) -> tuple:
  """Verification/calibration inputs as one float32 array, and their origin."""
  if data is None:
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
      raise ValueError(
          f"Model input shape {model.input_shape} has unknown dimensions, so "
          "no inputs can be drawn. Fix: pass representative_data=<inputs>.")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((_NUM_CHECK,) + shape).astype(np.float32), (
        "random normal")
  if isinstance(data, tf.data.Dataset):
    xs = []
    for batch in data.take(8):
      x = batch[0] if isinstance(batch, (tuple, list)) else batch
      xs.append(np.asarray(x))
    data = np.concatenate(xs)
  elif isinstance(data, tuple):
    data = data[0]  # an (x, y) pair
  x = np.asarray(data, np.float32)
  if x.shape[1:] != tuple(d for d in model.input_shape[1:]) and all(
      d is not None for d in model.input_shape[1:]):
    raise ValueError(
        f"representative_data has per-example shape {x.shape[1:]} but the "
        f"model expects {tuple(model.input_shape[1:])}. Fix: pass a batch of "
        "model inputs (array, (x, y) tuple or dataset of (x, y)).")
  return x[:256], "given"


def _convert(model, *, sparse, quantize, calib) -> bytes:
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  opts = []
  if sparse:
    opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
  if quantize is not None:
    opts.append(tf.lite.Optimize.DEFAULT)
  converter.optimizations = opts
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


def to_tflite(model, path, *, sparse=True, quantize: Optional[str] = None,
              representative_data=None, seed=0) -> dict:
  """Converts ``model`` to TFLite at ``path``, verifies it, reports sizes.

  Mask wrappers are stripped first (``sbp_tf.masking.strip``). The reported
  ``size_ratio = file bytes / dense float32 TFLite bytes`` (the same model
  converted with no sparsity and no quantization); ``max_abs_diff =
  max |y_tflite - y_keras|`` over the verification inputs.

  Usage::

      r = to_tflite(model, "m.tflite", quantize="dynamic", representative_data=x)
      assert r["verified"], r

  Args:
    model: Keras model, wrapped (tfmot / MaskedLayer) or plain.
    path: output ``.tflite`` file.
    sparse: store pruned weights sparse (``EXPERIMENTAL_SPARSITY``).
    quantize: None (float32), ``'dynamic'`` (int8 weights) or ``'int8'``
      (int8 weights and activations; needs ``representative_data``).
    representative_data: model inputs (array, ``(x, y)`` or dataset of
      ``(x, y)`` batches) for verification and int8 calibration; default
      random normal inputs (float and dynamic only).
    seed: seed of the random verification inputs.

  Returns:
    dict with ``path, bytes, dense_float_bytes, size_ratio, sparse_tensors``
    (names of weight tensors stored sparse), ``num_sparse_tensors``,
    ``quantize, max_abs_diff, rel_diff`` (max diff / max |y_keras|),
    ``top1_agreement, tolerance, verified, inputs, resolver``
    (``resolver_note`` when XNNPACK refused the graph), ``latency_ms``
    (median interpreter time per image, batch 1).

  Raises:
    ValueError: unknown ``quantize``; ``'int8'`` without data; bad data shape.
  """
  if quantize not in _QUANTIZE:
    raise ValueError(
        f"quantize={quantize!r} is not supported. Fix: use one of "
        f"{_QUANTIZE}.")
  if quantize == "int8" and representative_data is None:
    raise ValueError(
        "quantize='int8' calibrates activations on real inputs. Fix: pass "
        "representative_data=<a few hundred training inputs>.")
  if not isinstance(model, keras.Model):
    raise TypeError(f"to_tflite needs a keras.Model, got {type(model)}.")
  x, origin = _as_array(representative_data, model, seed)
  plain = masking.strip(model) if _is_wrapped(model) else model

  content = _convert(plain, sparse=sparse, quantize=quantize, calib=x)
  dirname = os.path.dirname(os.path.abspath(path))
  os.makedirs(dirname, exist_ok=True)
  with open(path, "wb") as f:
    f.write(content)
  if sparse or quantize is not None:
    dense_bytes = len(_convert(plain, sparse=False, quantize=None, calib=x))
  else:
    dense_bytes = len(content)

  interp, resolver, note = _interpreter(content)
  sparse_names = sorted(
      d["name"] for d in interp.get_tensor_details()
      if d.get("sparsity_parameters"))

  y_keras = np.asarray(plain(x, training=False), np.float32)
  y_lite = _run(interp, x)
  diff = float(np.abs(y_lite - y_keras).max())
  scale = float(np.abs(y_keras).max()) or 1.0
  top1 = float(np.mean(y_lite.argmax(-1) == y_keras.argmax(-1)))
  if quantize is None:
    tol = _FLOAT_ATOL * max(1.0, scale)
    verified = diff <= tol
  else:
    # Quantization error is ~1% of the output range per int8 layer; a
    # loose relative bound still catches a broken conversion.
    tol = 0.1 * scale
    verified = diff <= tol
  if not verified:
    warnings.warn(f"TFLite output differs from Keras by {diff:.3g} "
                  f"(tolerance {tol:.3g}) for {path}.")

  one = x[:1]
  _run(interp, one)  # warm-up
  times = []
  for _ in range(_LATENCY_RUNS):
    t0 = time.perf_counter()
    _run(interp, one)
    times.append(time.perf_counter() - t0)

  report = {
      "path": str(path),
      "bytes": len(content),
      "dense_float_bytes": dense_bytes,
      "size_ratio": len(content) / dense_bytes,
      "sparse": bool(sparse),
      "quantize": quantize,
      "sparse_tensors": sparse_names,
      "num_sparse_tensors": len(sparse_names),
      "max_abs_diff": diff,
      "rel_diff": diff / scale,
      "top1_agreement": top1,
      "tolerance": tol,
      "verified": bool(verified),
      "inputs": f"{origin} ({len(x)} examples)",
      "resolver": resolver,
      "latency_ms": 1000.0 * float(np.median(times)),
  }
  if note:
    report["resolver_note"] = note
  return report
