"""Section ``training``: ``model.fit`` images/s of masked models (tfmot
wrappers, plain-Keras masking) relative to the dense model."""

from typing import Any, Dict, List

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import masking
from sbp_tf import pruning
from sbp_tf import tfmot
from tools import bench
from tools.bench import common
from tools.bench import timing

SPARSITY = 0.9
# Target: masked images/s / dense images/s (issue 8).
MIN_RATIO_TO_DENSE = 0.95


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Model as (name, input shape, classes, build options)."""
  if quick:
    # Tracing three wrapped ResNets alone takes ~30 s on a loaded 2-core
    # machine; a 4-layer CNN exercises the same code paths.
    return {"train_model": ("vcnn", (32, 32, 3), 10, {"depth": 4, "width": 32}),
            "train_batch": 32, "train_steps": 4, "train_rounds": repeats}
  return {"train_model": ("resnet32", (32, 32, 3), 10, {}),
          "train_batch": 128, "train_steps": 8, "train_rounds": repeats}


def _variants(settings):
  """(label, model, callbacks) for dense, tfmot-wrapped and plain masking."""
  name, shape, ncls, options = settings.train_model
  build = lambda: common.build_model(name, shape, ncls, options, settings.seed)
  dense = build()
  # The cost does not depend on which weights are kept: magnitude masks.
  masks = pruning.prune(build(), "magnitude", SPARSITY,
                        seed=settings.seed).masks
  return [("dense", dense, []),
          ("tfmot", tfmot.wrap(build(), masks), list(tfmot.callbacks())),
          # MaskedLayer keeps pruned weights zero itself: no callback.
          ("masking", masking.wrap(build(), masks), [])]


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """``model.fit`` images/s of masked models relative to the dense model.

  Same architecture, initialization, batch and in-memory data for all; masks
  at 90% sparsity (magnitude; the cost does not depend on which weights).
  Rounds interleave the variants (dense, tfmot, masking, dense, ...); each
  rate excludes the epoch's first step and includes every callback;
  ``ratio_to_dense`` is paired per round.
  """
  name, shape, ncls, options = settings.train_model
  b, steps = settings.train_batch, settings.train_steps
  ds, source = common.cached_train_data(settings, b, steps, shape, ncls)
  variants = _variants(settings)
  first = {}
  for label, model, cbs in variants:
    common.compile_model(model)
    walls = []
    # Warm-up: tracing and the data cache.
    common.fit_rate(model, ds, steps, b, cbs, walls)
    first[label] = walls[0]
  rates = {label: [] for label, _, _ in variants}
  walls = {label: [] for label, _, _ in variants}
  for _ in range(settings.train_rounds):
    for label, model, cbs in variants:
      rates[label].append(common.fit_rate(model, ds, steps, b, cbs,
                                          walls[label]))
  rows = []
  for label, _, _ in variants:
    rows.append({"variant": label, "model": name, "options": options,
                 "batch_size": b, "steps_per_round": steps,
                 "images_per_s": timing.summarize(rates[label], "images/s"),
                 "ratio_to_dense": timing.ratio_stats(rates[label],
                                                      rates["dense"]),
                 "fit_call_s": timing.summarize(walls[label]),
                 "first_fit_call_s": first[label]})
  return {"rows": rows, "notes": [f"data: {source}"],
          "dense_images_per_s": timing.summarize(rates["dense"])["median"]}


def markdown(sec: Dict[str, Any]) -> List[str]:
  """One row per variant: images/s, ratio to dense, fit call wall times."""
  return [
      "Steady images/s exclude each epoch's first step; a fit call's wall "
      "time includes it and fit's setup (first call: tracing).", "",
      *common.table(
          ["variant", "model", "batch", "images/s", "ratio to dense",
           "fit call s", "first fit call s"],
          [[r["variant"], r["model"], str(r["batch_size"]),
            common.stat(r["images_per_s"]), common.stat(r["ratio_to_dense"]),
            common.stat(r["fit_call_s"]), common.fmt(r["first_fit_call_s"])]
           for r in sec["rows"]])]


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  """Each masked variant's ``ratio_to_dense`` median >= MIN_RATIO_TO_DENSE."""
  out = []
  for row in sec.get("rows", []):
    if row["variant"] != "dense":
      r = row["ratio_to_dense"]
      out.append(bench.target(
          f"masked training throughput, {row['variant']}",
          "images/s / dense images/s", r["median"], ">=", MIN_RATIO_TO_DENSE,
          [r["min"], r["max"]]))
  return out


bench.register(bench.Section("training", run, markdown, targets=targets,
                             presets=presets, order=20))
