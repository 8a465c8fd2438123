"""Does a ``.tflite`` file compute what its Keras model computes?

Per output ``o``: ``max_abs_diff_o = max |y_tflite - y_keras|``, verified
iff it is at most ``max(atol, rtol * max |y_keras,o|)``.
"""

import warnings
from typing import Optional

import numpy as np

from sbp_tf import tflite_runtime
from sbp_tf.compat import tf
from sbp_tf.export import conversion
from sbp_tf.export import inputs
from sbp_tf.export import running


_FLOAT_ATOL = 1e-4  # float files: |diff| <= 1e-4 * max(1, max|y_keras|)
QUANT_RTOL = 0.1   # quantized files: |diff| <= 0.1 * max|y_keras|
_INT_DTYPES = (np.int8, np.uint8, np.int16)


def _tolerance(interp, scale, atol, rtol) -> float:
  """``max(atol, rtol * scale)``; defaults chosen by the file's weights."""
  quantized = any(d["dtype"] in _INT_DTYPES
                  for d in interp.get_tensor_details())
  if atol is None:
    atol = 0.0 if quantized else _FLOAT_ATOL
  if rtol is None:
    # Quantization error is ~1% of the output range per int8 layer; a
    # loose relative bound still catches a broken conversion.
    rtol = QUANT_RTOL if quantized else _FLOAT_ATOL
  return max(float(atol), float(rtol) * scale)


def mismatch(report, where) -> str:
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
        "Fix: verify the bytes conversion.convert() returned for this model.")
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

      content = conversion.convert(model)
      r = verify(content, model, x[:64], on_mismatch="raise")
      print(r["max_abs_diff"], r["resolver"], r["num_sparse_tensors"])
      r["outputs"]["cls"]["max_abs_diff"]      # per output

  Args:
    content: ``.tflite`` bytes (e.g. from :func:`conversion.convert`).
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
  plain = conversion.plain_model(model, "verify")
  xs, origin = inputs.as_inputs(data, plain, seed)
  interp, resolver, note = running.interpreter(content)
  runner = running.Runner(interp)
  y_keras = [np.asarray(y, np.float32) for y in
             tf.nest.flatten(plain(inputs.pack(plain, xs), training=False))]
  names = running.output_names(plain, len(y_keras))
  y_lite = runner.run(runner.feeds([s[0] for s in inputs.input_specs(plain)], xs))
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
    raise ValueError(mismatch(report, "the given content"))
  if not report["verified"] and on_mismatch == "warn":
    warnings.warn(mismatch(report, "the given content"))
  return report
