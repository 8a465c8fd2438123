"""Section ``memory``: peak host memory of ``prune(model, 'sbp', 0.9)``,
measured in a fresh child process.

The child is ``python -m tools.bench.memory SPEC_JSON`` (or, as before,
``python tools/benchmark.py --memory_child=SPEC_JSON``); it prints one line
``MEMORY_JSON {...}`` with the figures of :func:`child`.
"""

import json
import os
import pathlib
import resource
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List

import numpy as np

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import pruning
from tools import bench
from tools.bench import common

REPO = pathlib.Path(__file__).resolve().parents[2]
METHOD = "sbp"
SPARSITY = 0.9
POLL_S = 0.01
CHILD_TIMEOUT_S = 1800
PREFIX = "MEMORY_JSON "


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Model as (name, input shape, classes, build options)."""
  if quick:
    return {"memory_model": ("vcnn", (32, 32, 3), 10,
                             {"depth": 4, "width": 32}),
            "memory_batch": 8}
  return {"memory_model": ("resnet50_imagenet", (224, 224, 3), 1000, {}),
          "memory_batch": 32}


def rss_bytes() -> int:
  """This process's current resident set size in bytes (/proc/self/statm)."""
  with open("/proc/self/statm", encoding="ascii") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_peak(fn):
  """``(seconds, peak RSS bytes)`` of ``fn()``, RSS polled every 10 ms (and
  read once more at the end)."""
  peak = [rss_bytes()]
  stop = threading.Event()

  def poll():
    while not stop.is_set():
      peak[0] = max(peak[0], rss_bytes())
      time.sleep(POLL_S)

  th = threading.Thread(target=poll, daemon=True)
  th.start()
  t0 = time.perf_counter()
  fn()
  s = time.perf_counter() - t0
  stop.set()
  th.join()
  return s, max(peak[0], rss_bytes())


def child(spec: Dict[str, Any]) -> Dict[str, Any]:
  """Runs in a fresh process: peak RSS of building, then pruning, a model.

  ``ru_maxrss`` (the kernel's high-water mark, KiB on Linux) before and after
  ``prune``; a 10 ms polling thread also records the peak of current RSS
  during ``prune`` only. ``prune_increment_bytes = peak - RSS before``.
  """
  name, shape, ncls = spec["model"], tuple(spec["input_shape"]), spec["classes"]
  rss_import = rss_bytes()
  model = common.build_model(name, shape, ncls, spec["options"], spec["seed"])
  x, y, _ = common.batch(spec["seed"], spec.get("data_dir"), spec["batch"],
                         shape, ncls)
  before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  rss_before = rss_bytes()
  prune_s, peak = timed_peak(lambda: pruning.prune(
      model, spec["method"], SPARSITY, data=(x, y),
      loss=pruning.default_loss(), seed=spec["seed"]))
  after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  params = int(sum(np.prod(w.shape) for w in model.weights))
  return {"model": name, "options": spec["options"], "batch_size":
          spec["batch"], "input_shape": list(shape), "method": spec["method"],
          "parameters": params, "prune_s": prune_s,
          "rss_after_import_bytes": rss_import,
          "rss_before_prune_bytes": rss_before,
          "peak_rss_during_prune_bytes": peak,
          "ru_maxrss_before_prune_bytes": before_max,
          "ru_maxrss_after_prune_bytes": after_max,
          "prune_increment_bytes": max(0, peak - rss_before),
          "input_batch_bytes": int(x.nbytes),
          "weights_bytes": params * 4}


def child_main(spec_json: str) -> None:
  """Prints ``MEMORY_JSON <child(spec) as JSON>`` (the parent parses it)."""
  out = child(json.loads(spec_json))
  print(PREFIX + json.dumps(common.jsonable(out)), flush=True)


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """Peak RSS of ``prune(model, 'sbp', 0.9)`` measured in a child process."""
  name, shape, ncls, options = settings.memory_model
  spec = {"model": name, "input_shape": list(shape), "classes": ncls,
          "options": options, "batch": settings.memory_batch,
          "method": METHOD, "seed": settings.seed,
          "data_dir": settings.data_dir}
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  # A fresh process: this one's RSS already holds the other sections' models.
  proc = subprocess.run(
      [sys.executable, "-m", "tools.bench.memory", json.dumps(spec)],
      cwd=REPO, capture_output=True, text=True, env=env, check=False,
      timeout=CHILD_TIMEOUT_S)
  lines = [l for l in proc.stdout.splitlines() if l.startswith(PREFIX)]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f"memory child failed (rc={proc.returncode}): "
                       f"{proc.stderr[-2000:]}")
  out = json.loads(lines[-1][len(PREFIX):])
  out["notes"] = ["Fresh process: TF import, model build, one batch, then "
                  "prune(model, 'sbp', 0.9). Peak = highest sampled RSS "
                  "during prune (10 ms polling); ru_maxrss = kernel "
                  "high-water mark of the whole process."]
  return out


def markdown(sec: Dict[str, Any]) -> List[str]:
  """A figure/value table in MiB."""
  mib = lambda b: f"{b / 2**20:.0f} MiB"
  return [
      f"{sec['model']} {sec['options'] or ''}, batch {sec['batch_size']} x "
      f"{sec['input_shape']}, {sec['parameters']:,} weights; prune(sbp) took "
      f"{sec['prune_s']:.1f} s.", "",
      *common.table(["figure", "value"], [
          ["RSS after TF import", mib(sec["rss_after_import_bytes"])],
          ["RSS before prune (model + batch)",
           mib(sec["rss_before_prune_bytes"])],
          ["peak RSS during prune", mib(sec["peak_rss_during_prune_bytes"])],
          ["prune increment (peak - before)",
           mib(sec["prune_increment_bytes"])],
          ["ru_maxrss (process high-water mark)",
           mib(sec["ru_maxrss_after_prune_bytes"])],
          ["weights / input batch", f"{mib(sec['weights_bytes'])} / "
                                    f"{mib(sec['input_batch_bytes'])}"]])]


bench.register(bench.Section("memory", run, markdown, presets=presets,
                             order=50))


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit("usage: python -m tools.bench.memory SPEC_JSON (spec as "
                     "built by tools/bench/memory.py run()).")
  child_main(sys.argv[1])
