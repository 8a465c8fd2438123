"""The experiment working directory: layout, run state and per-epoch metrics.

Layout (every file written atomically, so a kill never leaves half a file)::

    <workdir>/config.json         resolved config (plain JSON)
    <workdir>/config_ml.json      the same via ConfigDict.to_json_best_effort
    <workdir>/masks.npz           pruning masks (sbp_tf.pruning.Masks)
    <workdir>/prune_report.{json,md,png}   per-layer density at init
    <workdir>/metrics.{csv,json}  one row per completed epoch
    <workdir>/tensorboard/        TensorBoard event files
    <workdir>/checkpoints/init    weights + optimizer after pruning at init
    <workdir>/checkpoints/ckpt-N  weights + optimizer after epoch N (last 2)
    <workdir>/state.json          {"status", "epochs_done", "epochs"}
    <workdir>/results.json        final metrics (status "finished")
    <workdir>/model_wrapped.keras, model.keras, model.tflite

Usage::

    wd = Workdir("/tmp/run")
    wd.check_compatible(cfg)   # ValueError if it holds another experiment
    wd.state()                 # {"status": "new", "epochs_done": 0}
"""

import csv
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, Dict, List

from sbp_tf import config as sbp_config

NEW, PRUNED, TRAINING, FINISHED = "new", "pruned", "training", "finished"


def write_json(path, obj) -> None:
  """Writes ``obj`` as JSON to ``path`` atomically (temp file + rename)."""
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
  with os.fdopen(fd, "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True, default=_jsonable)
  os.replace(tmp, path)


def write_text(path, text: str) -> None:
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
  with os.fdopen(fd, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _jsonable(x):
  try:
    return float(x)
  except (TypeError, ValueError):
    return str(x)


class Workdir:
  """Paths and state of one experiment directory (see module docstring)."""

  def __init__(self, path):
    self.path = pathlib.Path(path)

  def __truediv__(self, name):
    return self.path / name

  @property
  def ckpt_dir(self):
    return self.path / "checkpoints"

  def exists(self) -> bool:
    return (self.path / "config.json").exists()

  def state(self) -> Dict[str, Any]:
    """The run state; ``{"status": "new", "epochs_done": 0}`` if none yet."""
    p = self.path / "state.json"
    if not p.exists():
      return {"status": NEW, "epochs_done": 0}
    return json.loads(p.read_text())

  def set_state(self, status: str, epochs_done: int, **extra) -> None:
    write_json(self.path / "state.json",
               dict(status=status, epochs_done=int(epochs_done), **extra))

  def check_compatible(self, config) -> None:
    """Raises ValueError if the workdir holds a run of a different config.

    Also refuses a non-empty folder that is not an sbp_tf workdir, so a typo
    in --workdir cannot scatter files into an unrelated folder.
    """
    if not self.path.exists():
      return
    if not self.exists():
      # .worker<i>: non-chief workers' folders, possibly created first.
      if any(not p.name.startswith(".worker") for p in self.path.iterdir()):
        raise ValueError(
            f"workdir {str(self.path)!r} is not empty and holds no sbp_tf run "
            "(no config.json). Fix: pass a new or empty --workdir.")
      return
    stored = json.loads((self.path / "config.json").read_text())
    changed = sbp_config.diff(stored, config)
    if changed:
      new = sbp_config.to_dict(config)
      detail = ", ".join(
          f"{f}: {_lookup(stored, f)!r} -> {_lookup(new, f)!r}"
          for f in changed)
      raise ValueError(
          f"workdir {str(self.path)!r} holds a run with a different config "
          f"({detail}). Fix: use a new --workdir, restore the original "
          "settings to resume, or pass --overwrite to discard the old run.")

  def create(self, config) -> None:
    self.path.mkdir(parents=True, exist_ok=True)
    self.ckpt_dir.mkdir(exist_ok=True)
    if not self.exists():
      write_json(self.path / "config.json", sbp_config.to_dict(config))
      write_text(self.path / "config_ml.json",
                 config.to_json_best_effort(indent=1))
      self.set_state(NEW, 0)

  def clear(self) -> None:
    """Deletes the run's files (for --overwrite)."""
    if self.path.exists():
      shutil.rmtree(self.path)

  # Per-epoch metrics: kept as one JSON list, the CSV is regenerated from it
  # so the two never disagree and a resumed run drops un-checkpointed rows.
  def metrics(self) -> List[Dict[str, Any]]:
    p = self.path / "metrics.json"
    return json.loads(p.read_text()) if p.exists() else []

  def write_metrics(self, rows: List[Dict[str, Any]]) -> None:
    write_json(self.path / "metrics.json", rows)
    keys = ["epoch"] if rows else []
    for r in rows:
      keys += [k for k in r if k not in keys]
    p = self.path / "metrics.csv"
    fd, tmp = tempfile.mkstemp(dir=self.path, prefix="metrics.csv.")
    with os.fdopen(fd, "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=keys)
      w.writeheader()
      w.writerows(rows)
    os.replace(tmp, p)

  def results(self) -> Dict[str, Any]:
    return json.loads((self.path / "results.json").read_text())


def _lookup(d, dotted):
  for part in dotted.split("."):
    if not isinstance(d, dict) or part not in d:
      return "<missing>"
    d = d[part]
  return d
