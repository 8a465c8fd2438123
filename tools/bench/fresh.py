"""Section ``fresh``: what a user who prunes once waits for and holds.

One fresh child process per (model, method), and one per model for the dense
train step: TF import, model build, one batch, then the call timed twice,
weights restored in between. The first call pays tracing (and SynFlow's
float64 clone); the second is the steady cost. A 10 ms polling thread takes
the peak RSS of each call; ``increment = peak - RSS before the first call``.
SynFlow runs its default 100 rounds unless the preset says otherwise.

The child is ``python -m tools.bench.fresh SPEC_JSON``; it prints one line
``FRESH_JSON {...}``.

Targets (issue 24): first call <= 2x the steady call for every method, and a
prune call's peak increment <= 2x the dense train step's first call's.
"""

import json
import os
import pathlib
import subprocess
import sys
from typing import Any, Dict, List

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import pruning
from tools import bench
from tools.bench import common
from tools.bench import memory

REPO = pathlib.Path(__file__).resolve().parents[2]
METHODS = ("sbp", "grasp", "synflow", "magnitude", "random")
DATA_FREE = ("synflow", "magnitude", "random")
TRAIN = "train_step"
SPARSITY = 0.9
CHILD_TIMEOUT_S = 3600
PREFIX = "FRESH_JSON "
MAX_FIRST_TO_STEADY = 2.0
MAX_PEAK_TO_TRAIN = 2.0


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Models as (name, batch, input shape, classes, build options, SynFlow
  rounds or None for its default)."""
  del repeats  # one first and one steady call per fresh process
  if quick:
    return {"fresh_models": [("resnet_cifar", 16, (32, 32, 3), 10,
                              {"width_multiplier": 0.5, "depth": 8}, 3)],
            # The two that trace most (a second-order graph; a float64
            # clone): each row is a fresh process.
            "fresh_methods": ["grasp", "synflow"]}
  return {"fresh_models": [
      ("resnet32", 128, (32, 32, 3), 10, {}, None),
      ("resnet50", 128, (32, 32, 3), 10, {}, None),
      ("resnet50_imagenet", 16, (224, 224, 3), 1000, {}, None)],
          "fresh_methods": list(METHODS)}


def child(spec: Dict[str, Any]) -> Dict[str, Any]:
  """In a fresh process: the first and the second call of ``spec['method']``
  (a prune method, or ``'train_step'``), their times and peak RSS."""
  name, shape, ncls = spec["model"], tuple(spec["input_shape"]), spec["classes"]
  model = common.build_model(name, shape, ncls, spec["options"], spec["seed"])
  x, y, _ = common.batch(spec["seed"], spec.get("data_dir"), spec["batch"],
                         shape, ncls)
  method = spec["method"]
  if method == TRAIN:
    common.compile_model(model)
    call = lambda: model.train_on_batch(x, y)
  else:
    kw = {"seed": spec["seed"], "on_collapse": "ignore"}
    if method not in DATA_FREE:
      kw.update(data=(x, y), loss=pruning.default_loss())
    if method == "synflow" and spec.get("rounds"):
      kw["rounds"] = spec["rounds"]
    call = lambda: pruning.prune(model, method, SPARSITY, **kw)
  w0 = model.get_weights()
  before = memory.rss_bytes()
  first_s, first_peak = memory.timed_peak(call)
  model.set_weights(w0)
  steady_s, steady_peak = memory.timed_peak(call)
  return {"model": name, "options": spec["options"], "batch_size":
          spec["batch"], "method": method,
          "rounds": (spec.get("rounds") or 100) if method == "synflow" else 1,
          "first_s": first_s, "steady_s": steady_s,
          "first_to_steady": first_s / steady_s,
          "rss_before_bytes": before,
          "first_increment_bytes": max(0, first_peak - before),
          "steady_increment_bytes": max(0, steady_peak - before)}


def child_main(spec_json: str) -> None:
  out = child(json.loads(spec_json))
  print(PREFIX + json.dumps(common.jsonable(out)), flush=True)


def _run_child(spec):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  proc = subprocess.run(
      [sys.executable, "-m", "tools.bench.fresh", json.dumps(spec)],
      cwd=REPO, capture_output=True, text=True, env=env, check=False,
      timeout=CHILD_TIMEOUT_S)
  lines = [l for l in proc.stdout.splitlines() if l.startswith(PREFIX)]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f"fresh child failed (rc={proc.returncode}): "
                       f"{proc.stderr[-2000:]}")
  return json.loads(lines[-1][len(PREFIX):])


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """One child per model and method (and the dense step): see the module."""
  rows = []
  for name, size, shape, ncls, options, rounds in settings.fresh_models:
    base = {"model": name, "input_shape": list(shape), "classes": ncls,
            "options": options, "batch": size, "seed": settings.seed,
            "data_dir": settings.data_dir, "rounds": rounds}
    train = _run_child(dict(base, method=TRAIN))
    rows.append(train)
    for method in settings.fresh_methods:
      row = _run_child(dict(base, method=method))
      row["peak_to_train_step"] = (row["first_increment_bytes"]
                                   / max(1, train["first_increment_bytes"]))
      row["steady_to_train_step"] = row["steady_s"] / train["steady_s"]
      rows.append(row)
      ctx.progress({"rows": list(rows), "status": "ok", "partial": True})
  return {"rows": rows, "notes": [
      "Each row is a fresh process: first call (tracing, SynFlow's float64 "
      "clone) and second call (steady) of prune(model, method, 0.9) or of "
      "the dense train_on_batch. Peak increments are RSS above the process's "
      "RSS before the first call (10 ms polling)."]}


def markdown(sec: Dict[str, Any]) -> List[str]:
  mib = lambda b: f"{b / 2**20:.0f}"
  return [
      "One fresh process per row; limits: first / steady <= "
      f"{MAX_FIRST_TO_STEADY:g}, peak increment / the train step's <= "
      f"{MAX_PEAK_TO_TRAIN:g}.", "",
      *common.table(
          ["model", "batch", "call", "rounds", "first s", "steady s",
           "first / steady", "steady / train step", "peak MiB (first)",
           "peak MiB (steady)", "peak / train step's"],
          [[r["model"], str(r["batch_size"]), r["method"], str(r["rounds"]),
            common.fmt(r["first_s"]), common.fmt(r["steady_s"]),
            common.fmt(r["first_to_steady"]),
            common.fmt(r.get("steady_to_train_step")),
            mib(r["first_increment_bytes"]), mib(r["steady_increment_bytes"]),
            common.fmt(r.get("peak_to_train_step"))] for r in sec["rows"]])]


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  out = []
  for r in sec.get("rows", []):
    if r["method"] == TRAIN:
      continue
    where = f"{r['method']}, {r['model']} (batch {r['batch_size']})"
    out.append(bench.target(f"first call in a fresh process, {where}",
                            "first / steady prune call", r["first_to_steady"],
                            "<=", MAX_FIRST_TO_STEADY))
    out.append(bench.target(f"peak memory of prune, {where}",
                            "prune's peak RSS increment / dense train step's",
                            r["peak_to_train_step"], "<=", MAX_PEAK_TO_TRAIN))
  return out


bench.register(bench.Section("fresh", run, markdown, targets=targets,
                             presets=presets, order=55, run_order=900))


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: python -m tools.bench.fresh SPEC_JSON")
  child_main(sys.argv[1])
