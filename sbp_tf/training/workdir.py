"""The experiment working directory: layout, run state and per-epoch metrics.

Layout (every file written atomically, so a kill never leaves half a file)::

    <workdir>/config.json         resolved config (plain JSON)
    <workdir>/config_ml.json      the same via ConfigDict.to_json_best_effort
    <workdir>/masks.npz           pruning masks (sbp_tf.pruning.Masks)
    <workdir>/prune_report.{json,md,png}   per-layer density at init
    <workdir>/prune_diagnostics.json  collapse/connectivity at init
    <workdir>/metrics.{csv,json}  one row per completed epoch
    <workdir>/tensorboard/        TensorBoard event files
    <workdir>/checkpoints/init    weights + optimizer after pruning at init
    <workdir>/checkpoints/ckpt-N  weights + optimizer after epoch N (last 2)
    <workdir>/state.json          {"status", "epochs_done", "epochs"}
    <workdir>/results.json        final metrics (status "finished")
    <workdir>/model_wrapped.keras, model.keras, model.tflite
    <workdir>/.sbp_tf_workdir.json  marker: {"format", "version"} (ownership)
    <workdir>/.sbp_tf.lock, .sbp_tf.lock.json   run lock and its holder

Only a folder holding the marker (or, for workdirs written before it
existed, a ``config.json`` of sbp_tf's schema next to a ``state.json``) is
an sbp_tf workdir; :meth:`Workdir.clear` deletes only the entries above and
refuses, deleting nothing, when the folder holds anything else.

Usage::

    wd = Workdir("/tmp/run")
    wd.check_compatible(cfg)   # ValueError if it holds another experiment
    wd.state()                 # {"status": "new", "epochs_done": 0}
"""

import contextlib
import csv
import datetime
import json
import os
import pathlib
import re
import shutil
import socket
import sys
from typing import Any, Dict, List

from sbp_tf import config as sbp_config
from sbp_tf import files
from sbp_tf import log
from sbp_tf.files import write_json, write_text  # noqa: F401  (re-exported)

NEW, PRUNED, TRAINING, FINISHED = "new", "pruned", "training", "finished"

MARKER = ".sbp_tf_workdir.json"
FORMAT, FORMAT_VERSION = "sbp_tf.workdir", 1
LOCK, LOCK_INFO = ".sbp_tf.lock", ".sbp_tf.lock.json"
# Every entry sbp_tf writes at the top of a workdir (see module docstring).
OWNED_FILES = (
    "config.json", "config_ml.json", "masks.npz", "prune_report.json",
    "prune_report.md", "prune_report.png", "prune_diagnostics.json",
    "metrics.csv", "metrics.json", "state.json", "results.json",
    "model_wrapped.keras", "model.keras", "model.tflite", MARKER)
OWNED_DIRS = ("checkpoints", "tensorboard")
_CONFIG_KEYS = {"dataset", "model", "prune", "train", "seed"}


class WorkdirError(ValueError):
  """A workdir problem the user can fix; the message names the fix."""


class WorkdirLocked(WorkdirError):
  """Another live process holds the workdir's lock."""


def read_json(path, fix: str):
  """``json.loads`` of ``path``; WorkdirError naming the file and ``fix``."""
  path = pathlib.Path(path)
  try:
    return json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise WorkdirError(
        f"{path} is damaged (not valid JSON: {e}). Fix: {fix}") from None


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
    """Whether the folder is an sbp_tf workdir (marker, or legacy layout)."""
    if (self.path / MARKER).exists():
      return True
    cfg, state = self.path / "config.json", self.path / "state.json"
    if not (cfg.exists() and state.exists()):
      return False
    try:  # legacy workdir: config.json must be sbp_tf's schema
      stored = json.loads(cfg.read_text())
    except (ValueError, UnicodeDecodeError, OSError):
      return False
    return isinstance(stored, dict) and _CONFIG_KEYS <= set(stored)

  def foreign_entries(self) -> List[str]:
    """Top-level entries of the folder that sbp_tf did not write."""
    if not self.path.is_dir():
      return []
    return sorted(p.name for p in self.path.iterdir() if not _owned(p.name))

  def checkpoint_epochs(self) -> List[int]:
    """Epochs N with a ``checkpoints/ckpt-N.index``, newest first."""
    out = []
    if self.ckpt_dir.is_dir():
      for p in self.ckpt_dir.iterdir():
        m = re.fullmatch(r"ckpt-(\d+)\.index", p.name)
        if m:
          out.append(int(m.group(1)))
    return sorted(out, reverse=True)

  def has_checkpoints(self) -> bool:
    return bool(self.checkpoint_epochs()) or (
        self.ckpt_dir / "init.index").exists()

  def state(self) -> Dict[str, Any]:
    """The run state; ``{"status": "new", "epochs_done": 0}`` if none yet.

    Raises:
      WorkdirError: state.json is damaged, or missing next to checkpoints
        (never a silent restart that would discard the epochs done).
    """
    p = self.path / "state.json"
    if not p.exists():
      if self.has_checkpoints():
        n = max(self.checkpoint_epochs() or [0])
        raise WorkdirError(
            f"{p} is missing but {self.ckpt_dir} holds checkpoints (newest: "
            f"epoch {n}); refusing to restart silently. Fix: restore "
            "state.json, or pass --overwrite (overwrite=True) to start over "
            f"(losing {n} epochs).")
      return {"status": NEW, "epochs_done": 0}
    state = read_json(p, _fix_restore_or_overwrite("state.json"))
    if not (isinstance(state, dict) and "status" in state
            and "epochs_done" in state):
      raise WorkdirError(
          f"{p} is damaged (no status/epochs_done). Fix: "
          + _fix_restore_or_overwrite("state.json"))
    return state

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
      self._refuse_foreign()
      return
    stored = read_json(self.path / "config.json",
                       _fix_restore_or_overwrite("config.json"))
    changed = sbp_config.diff(stored, config)
    if changed:
      new = sbp_config.to_dict(config)
      detail = ", ".join(
          f"{f}: {_lookup(stored, f)!r} -> {_lookup(new, f)!r}"
          for f in changed)
      raise WorkdirError(
          f"workdir {str(self.path)!r} holds an sbp_tf run with a different "
          f"config ({detail}). Fix: use a new --workdir, restore the original "
          "settings to resume, or pass --overwrite to discard that run "
          "(it deletes only the files sbp_tf wrote there).")

  def _refuse_foreign(self) -> None:
    """WorkdirError if the folder is non-empty and not an sbp_tf workdir."""
    if not self.path.is_dir() or self.exists():
      return
    # .worker<i>: non-chief workers' folders, possibly created first;
    # the lock files: this run's own lock.
    other = sorted(p.name for p in self.path.iterdir()
                   if not (_WORKER.fullmatch(p.name)
                           or p.name in (LOCK, LOCK_INFO)))
    if other:
      raise WorkdirError(
          f"workdir {str(self.path)!r} is not empty and holds no sbp_tf run "
          f"(no {MARKER} marker; it holds {_listing(other)}); sbp_tf never "
          "writes into or deletes such a folder, --overwrite included. "
          "Fix: pass a new or empty --workdir.")

  def create(self, config) -> None:
    self.path.mkdir(parents=True, exist_ok=True)
    self.ckpt_dir.mkdir(exist_ok=True)
    if not (self.path / MARKER).exists():
      from sbp_tf import __version__  # pylint: disable=g-import-not-at-top
      write_json(self.path / MARKER, dict(format=FORMAT,
                                          version=FORMAT_VERSION,
                                          sbp_tf_version=__version__))
    if not (self.path / "config.json").exists():
      write_json(self.path / "config.json", sbp_config.to_dict(config))
      write_text(self.path / "config_ml.json",
                 config.to_json_best_effort(indent=1))
      self.set_state(NEW, 0)

  def clear(self) -> None:
    """Deletes the files sbp_tf wrote (for --overwrite), and nothing else.

    Raises:
      WorkdirError: the folder is not an sbp_tf workdir, or it also holds
        entries sbp_tf did not write (listed); nothing is deleted then.
    """
    if not self.path.exists():
      return
    if not self.exists():
      raise WorkdirError(
          f"workdir {str(self.path)!r} is not an sbp_tf workdir (no {MARKER})"
          "; --overwrite deletes nothing there. Fix: pass a new or empty "
          "--workdir.")
    foreign = self.foreign_entries()
    if foreign:
      raise WorkdirError(
          f"--overwrite refused: workdir {str(self.path)!r} also holds "
          f"entries sbp_tf did not write ({_listing(foreign)}); nothing was "
          "deleted. Fix: move them out of the folder, or use a new --workdir.")
    for p in self.path.iterdir():
      if p.name in (LOCK, LOCK_INFO):
        continue  # held by this very run
      if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
      else:
        p.unlink()

  @contextlib.contextmanager
  def lock(self):
    """Holds an exclusive lock on the workdir (``flock``, via ``filelock``).

    Non-blocking: raises WorkdirLocked at once, naming the holder, if another
    live process holds it. The kernel drops the lock when its process dies,
    so a killed run never leaves a stale lock. A folder this call created
    is removed again on exit if nothing but the lock files was written.
    """
    import filelock  # pylint: disable=g-import-not-at-top
    created = not self.path.exists()
    if self.path.exists() and not self.path.is_dir():
      raise WorkdirError(f"workdir {str(self.path)!r} is not a folder. Fix: "
                         "pass a folder path as --workdir.")
    self._refuse_foreign()  # not even a lock file in someone else's folder
    try:
      self.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise WorkdirError(
          f"cannot create workdir {str(self.path)!r} ({e.strerror}). Fix: "
          "pass a writable --workdir.") from None
    if not os.access(self.path, os.W_OK | os.X_OK):
      raise WorkdirError(
          f"workdir {str(self.path)!r} is not writable (read-only folder or "
          "file system). Fix: make it writable (chmod u+w) or pass another "
          "--workdir.")
    lk = filelock.FileLock(str(self.path / LOCK), timeout=0)
    try:
      lk.acquire()
    except PermissionError as e:
      raise WorkdirError(
          f"workdir {str(self.path)!r} is not writable ({e.strerror}). Fix: "
          "make it writable (chmod u+w) or pass another --workdir.") from None
    except filelock.Timeout:
      holder = _holder(self.path / LOCK_INFO)
      raise WorkdirLocked(
          f"workdir {str(self.path)!r} is in use by another sbp_tf run "
          f"({holder}). Fix: wait for that run to end (or stop it), or use "
          "another --workdir.") from None
    try:
      write_json(self.path / LOCK_INFO, dict(
          pid=os.getpid(), host=socket.gethostname(),
          started=datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          argv=list(sys.argv)))
      yield self
    finally:
      info = self.path / LOCK_INFO
      try:
        info.unlink()
      except OSError:
        pass
      lk.release()
      if created and self.path.is_dir():
        left = [p.name for p in self.path.iterdir()]
        if set(left) <= {LOCK}:
          shutil.rmtree(self.path, ignore_errors=True)

  # Per-epoch metrics: kept as one JSON list, the CSV is regenerated from it
  # so the two never disagree and a resumed run drops un-checkpointed rows.
  def metrics(self) -> List[Dict[str, Any]]:
    """Per-epoch rows; a damaged metrics.json is rebuilt from metrics.csv."""
    p = self.path / "metrics.json"
    if not p.exists():
      return []
    try:
      rows = json.loads(p.read_text())
      if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        return rows
      err = "not a list of rows"
    except (ValueError, UnicodeDecodeError) as e:
      err = str(e)
    rows = self._metrics_from_csv()
    if rows is None:
      raise WorkdirError(
          f"{p} is damaged ({err}) and metrics.csv cannot rebuild it. Fix: "
          "delete metrics.json and metrics.csv to resume without the "
          "per-epoch history, or pass --overwrite to start over.")
    log.say(f"{p} was damaged ({err}); rebuilt it from metrics.csv "
            f"({len(rows)} rows).")
    self.write_metrics(rows)
    return rows

  def _metrics_from_csv(self):
    p = self.path / "metrics.csv"
    try:
      with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
      out = []
      for r in rows:
        row = {k: (int(v) if k == "epoch" else float(v))
               for k, v in r.items() if v not in (None, "")}
        if "epoch" not in row:
          return None
        out.append(row)
      return out
    except (OSError, ValueError, TypeError, csv.Error):
      return None

  def write_metrics(self, rows: List[Dict[str, Any]]) -> None:
    write_json(self.path / "metrics.json", rows)
    keys = ["epoch"] if rows else []
    for r in rows:
      keys += [k for k in r if k not in keys]
    with files.atomic(self.path / "metrics.csv", "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=keys)
      w.writeheader()
      w.writerows(rows)

  def results(self) -> Dict[str, Any]:
    return read_json(self.path / "results.json",
                     "delete results.json and rerun: the final checkpoint "
                     "is evaluated again; or pass --overwrite to retrain.")


_WORKER = re.compile(r"\.worker\d+")


def _owned(name: str) -> bool:
  """Whether a top-level entry is one sbp_tf writes (or its temp file)."""
  if name in OWNED_FILES or name in OWNED_DIRS or name in (LOCK, LOCK_INFO):
    return True
  if _WORKER.fullmatch(name):
    return True
  # sbp_tf.files' temp files: "<name>.<random>.tmp" (Masks.save's too).
  return any(name.startswith(f + ".") for f in OWNED_FILES + (LOCK_INFO,))


def _listing(names, limit=8) -> str:
  shown = ", ".join(names[:limit])
  return shown + (f" and {len(names) - limit} more" if len(names) > limit
                  else "")


def _fix_restore_or_overwrite(name: str) -> str:
  return (f"restore {name} from a backup, or pass --overwrite "
          "(overwrite=True) to discard the run and start over.")


def _holder(info_path) -> str:
  try:
    h = json.loads(pathlib.Path(info_path).read_text())
    return f"pid {h.get('pid')} on {h.get('host')}, started {h.get('started')}"
  except (OSError, ValueError):
    return "holder unknown: it has not written " + LOCK_INFO + " yet"


def _lookup(d, dotted):
  for part in dotted.split("."):
    if not isinstance(d, dict) or part not in d:
      return "<missing>"
    d = d[part]
  return d
