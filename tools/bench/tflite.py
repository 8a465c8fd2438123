"""Section ``tflite``: file size and interpreter latency of the sparse TFLite
export relative to the dense float export."""

import pathlib
import tempfile
import time
from typing import Any, Dict, List

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import export
from sbp_tf import pruning
from sbp_tf.compat import tf
from tools import bench
from tools.bench import common
from tools.bench import timing

# Target (issue 8): file bytes / dense float file bytes at this sparsity.
TARGET_SPARSITY = 0.95
MAX_SIZE_RATIO = 0.12


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Model as (name, input shape, classes, build options)."""
  if quick:
    # A 115-layer ResNet takes ~10 s per TFLite conversion here.
    return {"tflite_model": ("vcnn", (32, 32, 3), 10,
                             {"depth": 4, "width": 64}),
            "tflite_sparsities": (0.0, 0.95), "tflite_invokes": 5}
  return {"tflite_model": ("resnet32", (32, 32, 3), 10, {}),
          "tflite_sparsities": (0.0, 0.9, 0.95, 0.98), "tflite_invokes": 20}


def _interpreter_latency(path, x, invokes, repeats):
  """Median ms per invoke of the TFLite interpreter (1 thread), with range.

  Falls back to the builtin op resolver when the default (XNNPACK) delegate
  refuses the graph.
  """
  resolver = "default (XNNPACK)"
  try:
    interp = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
  except (RuntimeError, ValueError):
    resolver = "builtin (XNNPACK refused)"
    interp = tf.lite.Interpreter(
        model_path=str(path), num_threads=1,
        experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
  inp = interp.get_input_details()[0]
  interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
  interp.invoke()
  samples = []
  for _ in range(repeats):
    t = timing.time_call(lambda: [interp.invoke() for _ in range(invokes)])
    samples.append(1e3 * t / invokes)
  return timing.summarize(samples, "ms"), resolver


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """File size and latency of the sparse TFLite export vs dense float.

  Reference: the unpruned model converted with ``sparse=False, quantize=None``.
  Rows: magnitude-pruned copies (same init) at each sparsity, exported with
  ``sparse=True``, float and dynamic-range quantized. Latency: one image per
  invoke, one interpreter thread. ``size_ratio = bytes / reference bytes``,
  ``latency_ratio = median ms / reference median ms``.
  """
  name, shape, ncls, options = settings.tflite_model
  x, _, _ = common.batch(settings.seed, settings.data_dir, 1, shape, ncls)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    def convert(s, quantize, sparse):
      model = common.build_model(name, shape, ncls, options, settings.seed)
      if s > 0:
        pruning.prune(model, "magnitude", s, seed=settings.seed)
      path = pathlib.Path(tmp) / f"m_{s}_{quantize}_{sparse}.tflite"
      t0 = time.perf_counter()
      report = export.to_tflite(model, str(path), sparse=sparse,
                                quantize=quantize)
      convert_s = time.perf_counter() - t0
      lat, resolver = _interpreter_latency(path, x, settings.tflite_invokes,
                                           settings.repeats)
      return {"sparsity": s, "quantize": quantize or "none", "sparse": sparse,
              "size_bytes": path.stat().st_size, "latency_ms": lat,
              "resolver": resolver, "convert_s": convert_s,
              "export_report": common.jsonable(report)}
    ref = convert(0.0, None, False)
    for s in settings.tflite_sparsities:
      for q in (None, "dynamic"):
        row = ref if (s == 0 and q is None) else convert(s, q, True)
        row = dict(row)
        row["size_ratio"] = row["size_bytes"] / ref["size_bytes"]
        row["latency_ratio"] = (row["latency_ms"]["median"]
                                / ref["latency_ms"]["median"])
        rows.append(row)
  return {"model": name, "options": options, "reference_bytes":
          ref["size_bytes"], "rows": rows,
          "notes": ["Reference = dense float export (sparse=False); the 0% "
                    "float row is that reference."]}


def markdown(sec: Dict[str, Any]) -> List[str]:
  """One row per (sparsity, quantization): bytes, latency and their ratios."""
  return [
      f"Model {sec['model']} {sec['options'] or ''}; dense float "
      f"reference {sec['reference_bytes']} bytes.", "",
      *common.table(
          ["sparsity", "quantize", "sparse", "bytes", "size ratio",
           "latency ms", "latency ratio", "resolver"],
          [[f"{r['sparsity']:.0%}", r["quantize"], str(r["sparse"]),
            str(r["size_bytes"]), common.fmt(r["size_ratio"]),
            common.stat(r["latency_ms"]), common.fmt(r["latency_ratio"]),
            r["resolver"]] for r in sec["rows"]])]


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  """``size_ratio <= MAX_SIZE_RATIO`` at TARGET_SPARSITY, per quantization."""
  return [bench.target(
      f"TFLite size at {TARGET_SPARSITY:.0%} sparsity, {row['quantize']}",
      "file bytes / dense float file bytes", row["size_ratio"], "<=",
      MAX_SIZE_RATIO)
          for row in sec.get("rows", [])
          if abs(row["sparsity"] - TARGET_SPARSITY) < 1e-9]


bench.register(bench.Section("tflite", run, markdown, targets=targets,
                             presets=presets, order=40))
