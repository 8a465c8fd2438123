r"""Reproduce the paper's tables: run a grid, aggregate seeds, write tables.

Every training cell goes through ``sbp_tf.experiment.run`` (the one training
loop, same as ``sbp_tf.train``); the layer-collapse study scores masks at
init with ``sbp_tf.pruning`` and its diagnostics. Each cell is one run folder
under ``--workdir``; re-running the same command skips finished cells and
resumes interrupted ones, so a grid can be stopped and continued at will.
After every cell the markdown table (mean +- std over seeds, the paper's
number beside it), the JSON of every run and the plot(s) are rewritten.

Usage::

    python tools/reproduce.py --experiment=table1 --scale=cpu \
        --workdir=/work/runs/reproduce --out_dir=docs/results
    python tools/reproduce.py --experiment=6 --scale=smoke --workdir=/tmp/r
    python tools/reproduce.py --experiment=3 --scale=cpu --seeds=0,1 \
        --time_budget_s=1800     # start no new cell after 30 min

Experiments: 1=table1 (ResNet SNIP vs SBP-SR), 2=table2 (all methods),
3=table4 (V-CNN ordered/EOC/EOC+rescaling), 4=table5 (VGG), 5=table9
(ReLU vs tanh ResNet), 6=collapse (critical sparsity, layer collapse; no
training). Scales: smoke (seconds), cpu (real offline data, shortened,
each experiment well within an hour on 2 cores), paper (published setting).
"""

import pathlib
import sys

# Run as a script (python tools/reproduce.py) the repo root is not on sys.path.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import sbp_tf  # noqa: F401,E402  (selects Keras 2 before TensorFlow)

import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any, Callable, Dict, List, Optional  # noqa: E402

from sbp_tf import files  # noqa: E402
from sbp_tf import log as sbp_log  # noqa: E402
from tools import reproduce_experiments as rx  # noqa: E402
from tools import reproduce_report as rr  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def _say(msg):
  # Through sbp_tf's one output channel; the prefix names the tool.
  sbp_log.say(f"reproduce: {msg}")


def _load_json(path):
  try:
    return json.loads(pathlib.Path(path).read_text())
  except (OSError, ValueError):
    return None


def default_out_dir(workdir) -> pathlib.Path:
  """Where the tables go without --out_dir: the clone's docs/results, or
  ``<workdir>/results`` when run from an installed sbp_tf (no docs/)."""
  docs = REPO / "docs" / "results"
  return docs if docs.is_dir() else pathlib.Path(workdir) / "results"


def finished_metrics(cell, run_dir) -> Optional[Dict[str, Any]]:
  """The stored metrics of a finished cell, or None if it must (re)run."""
  run_dir = pathlib.Path(run_dir)
  if cell.kind == "collapse":
    return _load_json(run_dir / "collapse.json")
  state = _load_json(run_dir / "state.json") or {}
  if state.get("status") == "finished":
    return _load_json(run_dir / "results.json")
  return None


def run_cell(cell, run_dir) -> Dict[str, Any]:
  """Computes one cell in ``run_dir``; returns its metrics."""
  if cell.kind == "collapse":
    from tools import reproduce_collapse  # pylint: disable=g-import-not-at-top
    return reproduce_collapse.run(cell.config, run_dir)
  from sbp_tf import experiment  # pylint: disable=g-import-not-at-top
  opts = cell.config.get("model", {}).get("options", {})
  if opts.get("activation") == "tanh" and opts.get("batch_norm") is not False:
    # Grappler fuses BatchNorm + Tanh into a kernel TF 2.21 lacks on CPU
    # ("Unimplemented: [FusedBatchNorm,Tanh]" at evaluation); turn that
    # rewrite off for this process.
    from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
    tf.config.optimizer.set_experimental_options({"remapping": False})
  data_dir = cell.config.get("dataset", {}).get("data_dir")
  if data_dir and "cifar10-mixed" in data_dir:
    from tools import reproduce_data  # pylint: disable=g-import-not-at-top
    reproduce_data.mixed_cifar10(pathlib.Path(data_dir).parent)
  return experiment.run(cell.config, str(run_dir))


def run_cell_in_child(cell, run_dir) -> Dict[str, Any]:
  """Runs one cell in a fresh Python process with ``cell.env`` set.

  A native crash (TF kernels) then costs one cell, not the grid, and the
  process starts with the environment the cell needs (oneDNN off for the
  SynFlow work-around). The job, result and log files go to the sibling
  folder ``<run_dir>.cell/`` (a training workdir must hold only its run).
  """
  run_dir = pathlib.Path(run_dir)
  side = run_dir.with_name(run_dir.name + ".cell")
  side.mkdir(parents=True, exist_ok=True)
  job = side / "cell_job.json"
  files.write_text(job, json.dumps(dict(kind=cell.kind, config=cell.config,
                                       run_dir=str(run_dir)), default=str))
  result = side / "cell_result.json"
  if result.exists():
    result.unlink()
  env = dict(os.environ, **cell.env)
  env["PYTHONPATH"] = os.pathsep.join(
      [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
  code = ("import sys; from tools import reproduce; "
          "reproduce.child_main(sys.argv[1])")
  with open(side / "cell.log", "ab") as log:
    proc = subprocess.run([sys.executable, "-c", code, str(job)], cwd=REPO,
                          env=env, stdout=log, stderr=subprocess.STDOUT)
  if proc.returncode != 0 or not result.exists():
    tail = (side / "cell.log").read_text(errors="replace")[-600:]
    how = (f"signal {-proc.returncode}" if proc.returncode < 0
           else f"exit status {proc.returncode}")
    raise RuntimeError(f"cell process ended with {how}; end of "
                       f"{side / 'cell.log'}:\n{tail}")
  return json.loads(result.read_text())


class _JobCell:
  def __init__(self, kind, config):
    self.kind, self.config = kind, config


def child_main(job_path) -> None:
  """Entry point of :func:`run_cell_in_child`'s process."""
  job = json.loads(pathlib.Path(job_path).read_text())
  metrics = run_cell(_JobCell(job["kind"], job["config"]), job["run_dir"])
  run_dir = pathlib.Path(job["run_dir"])
  out = run_dir.with_name(run_dir.name + ".cell") / "cell_result.json"
  files.write_text(out, json.dumps(metrics, default=str))


def _clear_session():
  try:
    from sbp_tf.compat import keras  # pylint: disable=g-import-not-at-top
    keras.backend.clear_session()
  except Exception:  # pylint: disable=broad-except
    pass


def _fmt_s(seconds: float) -> str:
  return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def command_line(experiment, scale, seeds, workdir, out_dir) -> str:
  parts = ["python", "tools/reproduce.py", f"--experiment={experiment}",
           f"--scale={scale}"]
  if seeds:
    parts.append(f"--seeds={seeds}")
  parts.append(f"--workdir={workdir}")
  if out_dir is not None:
    parts.append(f"--out_dir={out_dir}")
  return " ".join(shlex.quote(p) for p in parts)


def run_grid(experiment: str, scale: str, *, workdir, seeds=None,
             out_dir=None, max_cells: Optional[int] = None,
             time_budget_s: Optional[float] = None,
             report_only: bool = False, command: Optional[str] = None,
             isolate: Optional[bool] = None, reuse_table: bool = True,
             log: Callable[[str], None] = _say) -> Dict[str, Any]:
  """Runs (or resumes) experiment ``experiment`` at ``scale``; writes tables.

  Args:
    experiment: '1'..'7' or its name (see ``reproduce_experiments``).
    scale: 'smoke', 'cpu', 'cpu_full' (tables 1, 2, 9), 'gpu' (extreme
      only) or 'paper'.
    workdir: root of the run folders (one per cell:
      ``<workdir>/<experiment>/<scale>/<row>/<col>/seed<k>``).
    seeds: None (scale default), a count or a comma list.
    out_dir: where ``<experiment>_<scale>.{md,json,png}`` go (default
      :func:`default_out_dir`).
    max_cells: run at most this many unfinished cells, then stop.
    time_budget_s: start no new cell after this many seconds.
    report_only: run nothing; rebuild the tables from the run folders.
    command: the command line printed in the table header.
    isolate: run every cell in its own process (None: yes except at the
      smoke scale; cells that need a special environment always do).
    reuse_table: cells whose run folder is missing but which the table
      already in ``out_dir`` records as finished with the identical config
      are taken from that table instead of rerun (a grid committed from one
      machine resumes on another; a changed config reruns its cell).
    log: progress printer.

  Returns:
    ``{"spec", "records", "files", "ran", "pending"}``.

  Example::

      out = run_grid("table4", "smoke", workdir="/tmp/r", out_dir="/tmp/o")
      out["files"]["md"]   # '/tmp/o/table4_smoke.md'
  """
  spec = rx.build(experiment, scale, seeds)
  out_dir = pathlib.Path(out_dir) if out_dir else default_out_dir(workdir)
  root = pathlib.Path(workdir) / spec.name / scale
  if command is None:
    command = command_line(spec.name, scale, seeds, workdir,
                           None if out_dir == default_out_dir(workdir)
                           else out_dir)
  t0 = time.time()
  records: List[Dict[str, Any]] = []
  for cell in spec.cells:
    run_dir = root / cell.run_id
    records.append(dict(row=cell.row, col=cell.col, seed=cell.seed,
                        run_id=cell.run_id, run_dir=str(run_dir),
                        status="pending", metrics=None, config=cell.config))
  for rec in records:
    m = finished_metrics(_cell_of(spec, rec), rec["run_dir"])
    if m is not None:
      rec.update(status="done", metrics=m)
  if reuse_table:
    reused = _reuse_committed(records, out_dir / f"{spec.name}_{scale}.json")
    if reused:
      log(f"{spec.name}/{scale}: {reused} finished cell(s) taken from the "
          f"existing table in {out_dir} (their run folders are not here)")
  files = None
  ran = 0
  if isolate is None:
    isolate = scale != "smoke"
  header_base = dict(command=command, machine=rr.machine(),
                     tf_version=rr.tf_version())

  def report():
    done = [r for r in records if r["status"] == "done"]
    total_s = sum(float((r["metrics"] or {}).get("wall_time_s") or 0)
                  for r in done)
    header = dict(header_base, machine=_machines(done, header_base["machine"]),
                  done=len(done), total=len(records),
                  errors=sum(r["status"] == "error" for r in records),
                  wall_time=(f"{_fmt_s(total_s)} summed over the {len(done)} "
                             f"finished cells (one process, cells run one "
                             f"after another)"),
                  wall_time_s=total_s)
    return rr.write(spec, records, header, out_dir)

  if not report_only:
    for rec in records:
      if rec["status"] == "done":
        continue
      if max_cells is not None and ran >= max_cells:
        break
      if time_budget_s is not None and time.time() - t0 > time_budget_s:
        log(f"time budget of {_fmt_s(time_budget_s)} spent; stopping before "
            f"{rec['run_id']} (rerun to continue)")
        break
      cell = _cell_of(spec, rec)
      log(f"{spec.name}/{scale}: {rec['row']} @ {rec['col']} seed "
          f"{rec['seed']} -> {rec['run_dir']}")
      t_cell = time.time()
      try:
        pathlib.Path(rec["run_dir"]).parent.mkdir(parents=True, exist_ok=True)
        if isolate or cell.env:
          metrics = run_cell_in_child(cell, rec["run_dir"])
        else:
          metrics = run_cell(cell, rec["run_dir"])
        metrics = dict(metrics)
        metrics.setdefault("wall_time_s", time.time() - t_cell)
        rec.update(status="done", metrics=metrics, error=None,
                   machine=header_base["machine"])
        log(f"  done in {_fmt_s(time.time() - t_cell)}: "
            f"{_summary(spec, metrics)}")
      except Exception as e:  # pylint: disable=broad-except
        # One failing cell must not lose the grid; it is reported and
        # retried on the next run of the same command.
        rec.update(status="error", error=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc(limit=8))
        log(f"  FAILED: {type(e).__name__}: {e}")
      ran += 1
      _clear_session()
      files = report()
  files = report()
  pending = sum(r["status"] != "done" for r in records)
  log(f"{spec.name}/{scale}: {len(records) - pending}/{len(records)} cells "
      f"finished; table {files['md']}")
  return dict(spec=spec, records=records, files=files, ran=ran,
              pending=pending)


def _machines(done, here) -> str:
  """The machine line: one machine, or each machine with its cell count when
  cells taken from a committed table ran elsewhere."""
  counts = collections.Counter(r.get("machine") or here for r in done)
  if len(counts) <= 1:
    return next(iter(counts), here)
  return "; ".join(f"{m} ({n} cell{'s' if n != 1 else ''})"
                   for m, n in counts.items())


def _reuse_committed(records, table_json) -> int:
  """Marks pending records done from a table's JSON where the config (seed
  included) matches exactly; returns how many were taken.

  Matching is by config, not by row label, so a cell keeps its result when
  only its label changes (e.g. a row renamed into a labelled ablation).
  """
  doc = _load_json(table_json)
  if not doc:
    return 0
  canon = lambda c: json.dumps(c, sort_keys=True, default=str)
  prior = {canon(r.get("config")): r for r in doc.get("runs", [])
           if r.get("status") == "done" and r.get("metrics")
           and r.get("config")}
  n = 0
  for rec in records:
    old = prior.get(canon(rec["config"]))
    if rec["status"] != "done" and old is not None:
      rec.update(status="done", metrics=old["metrics"],
                 machine=old.get("machine") or
                 (doc.get("header") or {}).get("machine"))
      n += 1
  return n


def _cell_of(spec, rec):
  for c in spec.cells:
    if c.run_id == rec["run_id"]:
      return c
  raise KeyError(rec["run_id"])


def _summary(spec, metrics) -> str:
  if spec.name == "collapse":
    return f"critical sparsity {metrics.get('critical_sparsity')}"
  acc = metrics.get("test_accuracy")
  return (f"test accuracy {acc:.4f}, sparsity "
          f"{metrics.get('sparsity', float('nan')):.4f}")


def define_flags():
  """Registers the flags (only when run as a program: importing this module
  next to other absl binaries, as the tests do, must not clash)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("experiment", None, "Which study: " + rx.help_text() +
                      ". 'all' runs every experiment in order.")
  flags.DEFINE_enum("scale", "smoke", list(rx.SCALES),
                    "smoke: seconds, tiny settings (tests); cpu: real offline"
                    " data, shortened schedules, narrower models, fewer seeds"
                    " (each experiment well within an hour on 2 cores); "
                    "cpu_full: tables 1, 2 and 9 on all 50,000 images for 8 "
                    "epochs (dense ResNet32 >= 70%; about 7 minutes a cell on"
                    " 2 cores); gpu: the decisive extreme-sparsity cells sized for about"
                    " 10 minutes on one GPU (extreme only); "
                    "paper: the published settings (GPU/TPU).")
  flags.DEFINE_string("seeds", None, "Seed count (e.g. 3 = seeds 0,1,2) or a"
                      " comma list (0,4); default per scale: smoke 1, cpu 2, "
                      "cpu_full 3, gpu 1, paper 3.")
  from sbp_tf import cli  # pylint: disable=g-import-not-at-top
  cli.define_workdir_flag("Root folder of the run folders (one per cell; "
                          "finished cells are skipped on rerun).")
  flags.DEFINE_string("out_dir", None, "Where the .md/.json/.png tables go "
                      "(default docs/results in a clone, <workdir>/results "
                      "from an installed sbp_tf).")
  flags.DEFINE_integer("max_cells", None, "Run at most this many unfinished "
                       "cells, then write the (partial) table and stop.")
  flags.DEFINE_float("time_budget_s", None, "Start no new cell after this "
                     "many seconds.")
  flags.DEFINE_bool("report_only", False, "Run nothing; rebuild the tables "
                    "from the run folders.")
  flags.DEFINE_bool("reuse_table", True, "Take finished cells whose run "
                    "folder is missing from the table already in --out_dir "
                    "when their config is identical (resume a committed grid "
                    "on another machine); --noreuse_table reruns them.")
  flags.DEFINE_bool("isolate", None, "Run each cell in its own process "
                    "(default: yes except at --scale=smoke).")
  flags.mark_flags_as_required(["experiment"])


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from sbp_tf import cli  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_absl_logs()
  f = flags.FLAGS
  try:  # bad settings: one error line before any work (e.g. --seeds=abc)
    names = (list(rx.ORDER) if f.experiment.strip().lower() == "all"
             else [rx.resolve_name(n) for n in f.experiment.split(",")])
    rx.parse_seeds(f.seeds, f.scale)
  except ValueError as e:
    cli.fail(str(e))
  t0 = time.time()
  for name in names:
    budget = None
    if f.time_budget_s is not None:
      budget = f.time_budget_s - (time.time() - t0)
      if budget <= 0:
        _say(f"time budget spent; {name} not started")
        continue
    cmd = command_line(name, f.scale, f.seeds, f.workdir, f.out_dir)
    run_grid(name, f.scale, workdir=f.workdir, seeds=f.seeds,
             out_dir=f.out_dir, max_cells=f.max_cells, time_budget_s=budget,
             report_only=f.report_only, command=cmd, isolate=f.isolate,
             reuse_table=f.reuse_table)


def run_main():
  """The program (``python tools/reproduce.py``, ``python -m
  sbp_tf.reproduce``, ``sbp-reproduce``)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from sbp_tf import cli  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(__doc__))


if __name__ == "__main__":
  run_main()
