"""Section ``saliency``: ``prune()`` time per method as a multiple of one
dense train step on the same model and batch."""

from typing import Any, Dict, List

import numpy as np

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import pruning
from tools import bench
from tools.bench import common
from tools.bench import timing

METHODS = ("sbp", "grasp", "synflow", "magnitude", "random")
DATA_FREE = ("synflow", "magnitude", "random")
SPARSITY = 0.9
# Targets: prune time / dense train step, per method (issue 24; SynFlow at
# its default 100 rounds, on the CIFAR models only: on ImageNet-size inputs
# one all-ones example is cheap against a batch of 16, so no limit is set).
MAX_RATIO_TO_STEP = {"sbp": 1.15, "grasp": 3.0, "synflow": 5.0}
NO_LIMIT = {("synflow", "resnet50_imagenet")}


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Models as (name, batch, input shape, classes, build options, repeats,
  SynFlow rounds or None for ``synflow_rounds``)."""
  if quick:
    return {
        "methods": list(METHODS), "synflow_rounds": 3,
        # A ResNet-8 (one block per stage) at width 0.5: same code paths as
        # ResNet-32 with a quarter of the tracing time.
        "saliency_models": [("resnet_cifar", 16, (32, 32, 3), 10,
                             {"width_multiplier": 0.5, "depth": 8}, repeats,
                             None)],
        "saliency_skipped": [
            "--quick times a ResNet-8 at width 0.5; resnet32, resnet50 and "
            "resnet50_imagenet are run without --quick"]}
  return {
      "methods": list(METHODS), "synflow_rounds": 100,
      # SynFlow at its default 100 rounds on every model (what users get);
      # fewer repeats on the big models.
      "saliency_models": [
          ("resnet32", 128, (32, 32, 3), 10, {}, repeats, None),
          ("resnet50", 128, (32, 32, 3), 10, {}, max(1, repeats - 1), None),
          ("resnet50_imagenet", 16, (224, 224, 3), 1000, {},
           max(1, repeats - 2), None),
      ],
      "saliency_skipped": []}


def check(settings) -> None:
  """Raises ValueError for a method this section does not time."""
  bad = [m for m in settings.methods if m not in METHODS]
  if bad:
    raise ValueError(f"Unknown method(s) {bad}; choose from {list(METHODS)}.")


def prune_kwargs(method, settings, x, y, syn_rounds):
  """``prune()``'s keyword arguments for ``method`` as this section times
  it: the seed; data and the default loss for data-driven methods;
  ``syn_rounds`` rounds for SynFlow."""
  kw = {"seed": settings.seed}
  if method not in DATA_FREE:
    kw.update(data=(x, y), loss=pruning.default_loss())
  if method == "synflow":
    kw["rounds"] = syn_rounds
  return kw


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """Time of ``prune()`` per method as a multiple of one dense train step.

  Per model: the dense step (``model.train_on_batch`` after a warm-up call)
  and every method's ``prune(model, method, 0.9, ...)`` on the same model and
  batch are timed in interleaved rounds; the initial weights are restored
  (untimed) before every call, so each prune sees a fresh initialization.
  The first prune call on the model is reported separately (tracing).
  ``ratio_to_step`` is paired per round: ``prune_s[i] / step_s[i]``.
  """
  rows, notes = [], list(settings.saliency_skipped)
  notes.append("Timed: the public prune(model, method, 0.9) call (scores, "
               "global threshold, masks applied) on the same model, weights "
               "restored before each call; steady = calls after the first.")
  for (name, size, shape, ncls, options, repeats,
       syn_rounds) in settings.saliency_models:
    syn_rounds = syn_rounds or settings.synflow_rounds
    model = common.build_model(name, shape, ncls, options, settings.seed)
    common.compile_model(model)
    x, y, source = common.batch(settings.seed, settings.data_dir, size, shape,
                                ncls)
    w0 = model.get_weights()
    restore = lambda m=model, w=w0: m.set_weights(w)
    step_first = timing.time_call(lambda: model.train_on_batch(x, y))
    for _ in range(2):  # warm-up: steady-state compiled step
      model.train_on_batch(x, y)
    firsts = {}
    for method in settings.methods:
      restore()
      kw = prune_kwargs(method, settings, x, y, syn_rounds)
      firsts[method] = timing.time_call(
          lambda m=method, k=kw: pruning.prune(model, m, SPARSITY, **k))
    steps, times = [], {m: [] for m in settings.methods}
    for _ in range(repeats):
      restore()
      steps.append(float(np.median(
          [timing.time_call(lambda: model.train_on_batch(x, y))
           for _ in range(2)])))
      for method in settings.methods:
        restore()
        kw = prune_kwargs(method, settings, x, y, syn_rounds)
        times[method].append(timing.time_call(
            lambda m=method, k=kw: pruning.prune(model, m, SPARSITY, **k)))
    step = timing.summarize(steps)
    for method in settings.methods:
      steady = timing.summarize(times[method])
      rows.append({
          "model": name, "options": options, "method": method,
          "batch_size": size, "input_shape": list(shape), "data": source,
          "rounds": syn_rounds if method == "synflow" else 1,
          "train_step_s": step,
          "train_step_first_s": step_first,
          "prune_first_s": firsts[method],
          "prune_steady_s": steady,
          "tracing_s": max(0.0, firsts[method] - steady["median"]),
          "ratio_to_step": timing.ratio_stats(times[method], steps),
          "first_call_ratio_to_step": firsts[method] / step["median"],
      })
    del model
    # One model done: keep its rows if the run is interrupted.
    ctx.progress({"rows": list(rows), "notes": notes, "status": "ok",
                  "partial": True})
  return {"rows": rows, "notes": notes}


def markdown(sec: Dict[str, Any]) -> List[str]:
  """One row per (model, method): step, prune, ratio, first call, tracing."""
  return [
      "Seconds per call (median [min, max]); ratio = prune / dense train "
      "step, paired per round.", "",
      *common.table(
          ["model", "batch", "method", "rounds", "train step s", "prune s",
           "ratio to step", "first call s", "tracing s"],
          [[r["model"], str(r["batch_size"]), r["method"], str(r["rounds"]),
            common.stat(r["train_step_s"]), common.stat(r["prune_steady_s"]),
            common.stat(r["ratio_to_step"]), common.fmt(r["prune_first_s"]),
            common.fmt(r["tracing_s"])] for r in sec["rows"]])]


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  """``ratio_to_step`` median <= MAX_RATIO_TO_STEP[method], per model."""
  out = []
  for row in sec.get("rows", []):
    lim = MAX_RATIO_TO_STEP.get(row["method"])
    if lim and (row["method"], row["model"]) not in NO_LIMIT:
      r = row["ratio_to_step"]
      out.append(bench.target(
          f"{row['method']} saliency, {row['model']} (batch "
          f"{row['batch_size']})", "prune time / dense train step",
          r["median"], "<=", lim, [r["min"], r["max"]]))
  return out


bench.register(bench.Section(
    "saliency", run, markdown, targets=targets, presets=presets, check=check,
    # Measured last: it takes longest, so the other sections' figures are
    # written first.
    order=10, run_order=1000))
