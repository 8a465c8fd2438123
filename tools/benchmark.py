r"""Benchmark of pruning, masked training, input pipeline and TFLite export.

Every figure is measured in one run next to its reference and reported as a
ratio to it (this machine is shared and noisy): saliency cost as a multiple of
one dense training step on the same batch, masked ``model.fit`` throughput as a
fraction of the dense model's, the ``sbp_tf.data`` CIFAR-10 pipeline rate as a
multiple of the training rate, TFLite file size and latency relative to the
dense float model, and the peak host memory of pruning ResNet-50 (ImageNet
size). Timings are repeated; the JSON keeps median, quartiles, min and max.

The sections live in ``tools/bench/`` (one module each, found by the registry
``tools.bench.sections()``); this file is the command line that runs them.
Adding a section: see ``tools/bench/__init__.py``.

Usage::

    python tools/benchmark.py                     # full run -> docs/results/
    python tools/benchmark.py --quick --out_dir=/tmp/bench   # ~1 minute
    python tools/benchmark.py --sections=saliency,tflite --repeats=3

Writes ``<out_dir>/benchmark.json`` and ``<out_dir>/benchmark.md``.
"""

import pathlib
import sys

# Run as a script (python tools/benchmark.py) the repo root is not on sys.path.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# Selects Keras 2 before TensorFlow is imported.
import sbp_tf  # noqa: F401,E402

import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any, Callable, Dict, Optional, Sequence  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from tools import bench  # noqa: E402
from tools.bench import common  # noqa: E402
# Re-exported: these helpers used to live in this module.
from tools.bench.report import (  # noqa: E402,F401
    SCHEMA_VERSION, merge, targets, to_markdown, write)
from tools.bench.timing import (  # noqa: E402,F401
    cpu_snapshot, machine_info, other_cpu_cores, other_load, ratio_stats,
    summarize, time_call, time_repeats)

REPO = pathlib.Path(__file__).resolve().parents[1]
Settings = bench.Settings
SkipSection = bench.SkipSection
SECTIONS = tuple(bench.sections())  # names, in report order


def define_flags():
  """Registers the command-line flags (only when run as a program, so that
  importing this module next to other absl binaries cannot clash)."""
  flags.DEFINE_bool(
      "quick", False, "Small models, few repeats: about a minute. Figures are "
      "for checking the harness, not for reporting.")
  flags.DEFINE_string(
      "out_dir", None, "Where benchmark.json and benchmark.md go (default: "
      "docs/results for a full run (./benchmark_results from an installed "
      "sbp_tf), a temporary folder with --quick).")
  flags.DEFINE_list("sections", list(SECTIONS),
                    f"Sections to run, of {list(SECTIONS)}.")
  flags.DEFINE_list(
      "methods", None, "Pruning methods timed in the saliency section "
      f"(default: all, {Settings.full().methods}).")
  flags.DEFINE_list(
      "models", None, "Only these models in the saliency and fresh sections "
      "(default: all of the preset's; e.g. resnet32,resnet50 where "
      "ResNet50-ImageNet does not fit the time at hand).")
  flags.DEFINE_integer(
      "repeats", None, "Timed repeats per figure (default 5, or 2 with "
      "--quick).")
  flags.DEFINE_integer(
      "synflow_rounds", None, "SynFlow rounds (default 100, or 3 with "
      "--quick).")
  flags.DEFINE_string(
      "data_dir", None, "Folder with the CIFAR-10 archive (default: "
      "sbp_tf.data's search, e.g. ../shared/data).")
  flags.DEFINE_integer("seed", 0, "Seed of model init and pruning.")
  flags.DEFINE_string(
      "analysis_file", None, "Markdown file whose text is stored as the "
      "results' 'analysis' (profiles, explanations) and rendered last.")
  flags.DEFINE_bool(
      "render_only", False, "Re-render <out_dir>/benchmark.md from "
      "<out_dir>/benchmark.json (with --analysis_file) without measuring.")
  flags.DEFINE_bool(
      "merge", False, "Keep the sections already in <out_dir>/benchmark.json "
      "and replace only those measured now (e.g. re-time --sections=saliency "
      "after a fix); the markdown lists which command measured which section.")
  flags.DEFINE_string(
      "memory_child", None, "Internal: JSON settings of the memory-measuring "
      "child process (same as python -m tools.bench.memory SPEC).")


def run(settings: Settings, sections: Sequence[str], command: str = "",
        on_section: Optional[Callable[[Dict[str, Any]], Any]] = None
        ) -> Dict[str, Any]:
  """Runs the requested sections; returns the results dict (JSON-ready).

  Sections run in their registry ``run_order``; one that raises is recorded
  as ``error`` (``SkipSection``: ``skipped``) and the others still run.
  ``on_section(partial_results)`` is called after each section and on each
  ``ctx.progress`` (the full benchmark takes tens of minutes; partial results
  survive an interruption).

  Raises:
    ValueError: an unknown section, or settings a section's ``check`` rejects.
  """
  registry = bench.sections()
  bad = [s for s in sections if s not in registry]
  if bad:
    raise ValueError(f"Unknown section(s) {bad}. Fix: choose from "
                     f"{', '.join(registry)} (--sections=a,b).")
  for section in registry.values():
    section.check(settings)
  t_start = time.perf_counter()
  res = {"schema_version": SCHEMA_VERSION,
         "mode": "quick" if settings.quick else "full",
         "command": command,
         "started_utc": datetime.datetime.now(datetime.timezone.utc)
                        .strftime("%Y-%m-%d %H:%M UTC"),
         "machine": machine_info(),
         "settings": common.jsonable(settings.as_dict()),
         "sections": {}}
  loads = [os.getloadavg()]
  cpu_start = cpu_snapshot()
  for section in bench.run_order(sections):
    name = section.name
    t0 = time.perf_counter()
    snap = cpu_snapshot()

    def progress(partial, name=name, t0=t0):
      if on_section is not None:
        res["sections"][name] = common.jsonable(dict(
            partial, wall_s=time.perf_counter() - t0))
        on_section(_finish(dict(res, partial=True), loads, cpu_start, t_start))

    try:
      sec = section.run(settings, bench.Context(dict(res["sections"]),
                                                progress))
      sec["status"] = "ok"
    except SkipSection as e:
      sec = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # pylint: disable=broad-except
      # One broken section must not lose the others' figures.
      sec = {"status": "error", "reason": f"{type(e).__name__}: {e}",
             "traceback": traceback.format_exc()[-4000:]}
    sec["wall_s"] = time.perf_counter() - t0
    sec["other_cpu_cores"] = other_cpu_cores(snap, cpu_snapshot())
    sec["loadavg"] = list(os.getloadavg())
    loads.append(os.getloadavg())
    res["sections"][name] = common.jsonable(sec)
    print(f"[benchmark] {name}: {sec['status']} in {sec['wall_s']:.1f} s",
          flush=True)
    if on_section is not None:
      on_section(_finish(dict(res, partial=True), loads, cpu_start, t_start))
  return _finish(res, loads, cpu_start, t_start)


def _finish(res, loads, cpu_start, t_start):
  """Adds end-of-run machine load, targets and wall time to ``res``."""
  res = dict(res, machine=dict(res["machine"]))
  m = res["machine"]
  m["loadavg_end"] = list(os.getloadavg())
  m["loadavg_peak"] = max(la[0] for la in loads + [os.getloadavg()])
  m["other_cpu_cores"] = other_cpu_cores(cpu_start, cpu_snapshot())
  m["shared"] = other_load(m["other_cpu_cores"], loads, m["usable_cores"] or 1)
  res["targets"] = targets(res)
  res["wall_s"] = time.perf_counter() - t_start
  return res


def settings_from_flags() -> Settings:
  """The ``--quick`` or full preset with the flags' overrides."""
  f = flags.FLAGS
  kw = {"seed": f.seed, "data_dir": f.data_dir, "methods": f.methods,
        "synflow_rounds": f.synflow_rounds}
  if f.repeats is not None:
    kw["repeats"] = f.repeats
  s = Settings.quick_preset(**kw) if f.quick else Settings.full(**kw)
  if f.models:
    known = {m[0] for m in s.saliency_models}
    bad = [m for m in f.models if m not in known]
    if bad:
      from sbp_tf import cli  # pylint: disable=g-import-not-at-top
      cli.fail(f"--models: {bad} are not in this preset's {sorted(known)}. "
               "Fix: name models of the preset.")
    s.saliency_models = [m for m in s.saliency_models if m[0] in f.models]
    s.fresh_models = [m for m in s.fresh_models if m[0] in f.models]
  return s


def default_out_dir() -> pathlib.Path:
  """A full run's results folder: the clone's docs/results, or
  ``./benchmark_results`` from an installed sbp_tf (no docs/ there)."""
  docs = REPO / "docs" / "results"
  return docs if docs.is_dir() else pathlib.Path("benchmark_results")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}; use --flags.")
  f = flags.FLAGS
  if f.memory_child:
    # Kept for old command lines; the memory section now runs
    # python -m tools.bench.memory SPEC itself.
    from tools.bench import memory  # pylint: disable=g-import-not-at-top
    memory.child_main(f.memory_child)
    return
  analysis = (pathlib.Path(f.analysis_file).read_text(encoding="utf-8")
              if f.analysis_file else None)
  if f.render_only:
    out_dir = pathlib.Path(f.out_dir or default_out_dir())
    res = json.loads((out_dir / "benchmark.json").read_text(encoding="utf-8"))
    if analysis is not None:
      res["analysis"] = analysis
    paths = write(res, out_dir)
    print(f"[benchmark] re-rendered {paths['md']}")
    return
  settings = settings_from_flags()
  out_dir = f.out_dir or (
      tempfile.mkdtemp(prefix="sbp_benchmark_") if settings.quick
      else str(default_out_dir()))
  command = "python tools/benchmark.py " + " ".join(sys.argv[1:])
  old = None
  if f.merge:
    old_path = pathlib.Path(out_dir) / "benchmark.json"
    if not old_path.exists():
      raise app.UsageError(f"--merge: {old_path} does not exist. Fix: run "
                           "without --merge first.")
    old = json.loads(old_path.read_text(encoding="utf-8"))
  combine = (lambda r: merge(old, r)) if old is not None else (lambda r: r)
  try:
    res = run(settings, f.sections, command=command.strip(),
              on_section=lambda partial: write(combine(partial), out_dir))
  except ValueError as e:  # unknown section, settings a section rejects
    from sbp_tf import cli  # pylint: disable=g-import-not-at-top
    cli.fail(str(e))
  res = combine(res)
  if analysis is not None:
    res["analysis"] = analysis
  paths = write(res, out_dir)
  for t in res["targets"]:
    verdict = {True: "met", False: "MISSED", None: "-"}[t["met"]]
    print(f"[benchmark] {t['name']}: {common.fmt(t['value'])} ({t['op']} "
          f"{t['limit']}) {verdict}")
  print(f"[benchmark] wrote {paths['json']} and {paths['md']}")


def run_main():
  """The program (``python tools/benchmark.py``, ``python -m
  sbp_tf.benchmark``, ``sbp-benchmark``)."""
  from sbp_tf import cli  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(__doc__))


if __name__ == "__main__":
  run_main()
