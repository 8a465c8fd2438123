"""The two compositions of the export steps.

:func:`export_for_run` (convert, atomic write, verify: the cheap one for
training runs) and :func:`to_tflite` (also the dense reference size and
the latency).
"""

import os
import warnings
from typing import Optional

from sbp_tf import files
from sbp_tf.export import conversion
from sbp_tf.export import inputs
from sbp_tf.export import sizes
from sbp_tf.export import timing
from sbp_tf.export import verification


def _write_and_verify(plain, path, sparse, quantize, x, origin) -> tuple:
  """Converts, verifies, writes ``path`` atomically; (content, report).

  If the sparse encoding's outputs do not verification.verify while the same model
  converted dense does, the dense file is written instead and the report
  says why (``sparse_fallback``): TensorFlow 2.21's converter mis-encodes
  some sparsity patterns of fully connected kernels (found on a 70x16 kernel
  with 24 nonzeros), and a wrong file must never be written as a verified
  one.
  """
  # The caller states the mode, so tolerances follow it, not the file.
  tols = (None, None) if quantize is None else (0.0, verification.QUANT_RTOL)

  def attempt(sp):
    content = conversion.convert(plain, sparse=sp, quantize=quantize,
                      representative_data=inputs.feedable(plain, x))
    return content, verification.verify(content, plain, inputs.feedable(plain, x),
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
    warnings.warn(verification.mismatch(check, path))
  report = {"path": str(path), "bytes": len(content), "sparse": bool(sparse),
            "quantize": quantize, "sparse_fallback": fallback}
  report.update(check)
  return content, report


def _prepare(model, quantize, representative_data, seed, caller) -> tuple:
  conversion.check_quantize(quantize, representative_data)
  plain = conversion.plain_model(model, caller)
  x, origin = inputs.as_inputs(representative_data, plain, seed)
  return plain, x, origin


def export_for_run(model, path, *, sparse=True, quantize: Optional[str] = None,
                   representative_data=None, seed=0) -> dict:
  """The cheap export for training runs: conversion.convert, write atomically, verification.verify.

  Same conversion, file and verification as :func:`to_tflite`, without the
  dense reference conversion (no ``size_ratio``) and without timing. A file
  that fails verification is still written; the report says
  ``verified: False`` and a warning names the file.

  Usage::

      r = export_for_run(sbp_tf.tfmot.strip(model), workdir / "model.tflite")
      results["tflite"] = {k: r[k] for k in ("path", "bytes", "verified")}

  Returns:
    dict with ``path, bytes, sparse, quantize`` and :func:`verification.verify`'s keys.

  Raises:
    ValueError, TypeError: as :func:`to_tflite`, before anything is written.
  """
  plain, x, origin = _prepare(model, quantize, representative_data, seed,
                              "export_for_run")
  return _write_and_verify(plain, path, sparse, quantize, x, origin)[1]


def to_tflite(model, path, *, sparse=True, quantize: Optional[str] = None,
              representative_data=None, seed=0, compare_dense=True,
              time_runs: int = timing.LATENCY_RUNS) -> dict:
  """Converts ``model`` to TFLite at ``path``, verifies it, reports sizes.

  :func:`export_for_run` plus :func:`sizes.size_report` (``size_ratio = file bytes
  / dense float32 TFLite bytes``) and :func:`timing.time_interpreter` on the first
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
    compare_dense: conversion.convert the dense float reference for ``size_ratio``;
      False gives ``dense_float_bytes = size_ratio = None``.
    time_runs: timed interpreter invokes; 0 gives ``latency_ms = None``.

  Returns:
    dict with ``path, bytes, dense_float_bytes, size_ratio, sparse,
    quantize, latency_ms`` (median ms per image, batch 1) and
    :func:`verification.verify`'s keys.

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
    report.update(sizes.size_report(content, plain, dense_float_bytes=known))
  if time_runs:
    names = [spec[0] for spec in inputs.input_specs(plain)]
    report["latency_ms"] = timing.time_interpreter(
        content, time_runs, x=x[0] if len(x) == 1 else dict(zip(names, x))
    )["latency_ms"]
  return report
