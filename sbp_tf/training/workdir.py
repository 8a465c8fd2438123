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
an sbp_tf workdir; :meth:`Workdir.clear` deletes only the entries above
(inside ``checkpoints/`` and ``tensorboard/`` only the files TensorFlow
writes there, :data:`OWNED_INSIDE`) and refuses, deleting nothing, when the
folder holds anything else.

Usage::

    wd = Workdir("/tmp/run")
    wd.check_compatible(cfg)   # ValueError if it holds another experiment
    wd.state()                 # {"status": "new", "epochs_done": 0}
"""

import contextlib
import csv
import datetime
import errno
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
# What TensorFlow writes inside the owned folders, as paths relative to the
# folder (files and sub-folders); anything else there is the user's.
_PREFIX, _SHARD = r"(?:init|ckpt-\d+)", r"(?:index|data-\d+-of-\d+)"
_TMP = r"(?:\.tempstate\d+|\.tmp[0-9a-f]*)?"  # TF's own temp-file suffixes
OWNED_INSIDE = {
    "checkpoints": re.compile(
        rf"checkpoint{_TMP}|{_PREFIX}\.{_SHARD}{_TMP}"
        rf"|{_PREFIX}_temp(?:/part-\d+-of-\d+\.{_SHARD}{_TMP})?"),
    # train/validation: Keras' TensorBoard; sparsity: training.summaries.
    "tensorboard": re.compile(
        r"(?:train|validation|sparsity)(?:/events\.out\.tfevents\.[^/]+)?"),
}
_CONFIG_KEYS = {"dataset", "model", "prune", "train", "seed"}


class WorkdirError(ValueError):
  """A workdir problem the user can fix; the message names the fix."""


class WorkdirLocked(WorkdirError):
  """Another live process holds the workdir's lock."""


def read_json(path, fix: str):
  """``json.loads`` of ``path``; WorkdirError naming the file and ``fix``
  when it is missing, unreadable or not JSON."""
  path = pathlib.Path(path)
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise WorkdirError(f"{path} is missing. Fix: {fix}") from None
  except (ValueError, UnicodeDecodeError) as e:
    raise WorkdirError(
        f"{path} is damaged (not valid JSON: {e}). Fix: {fix}") from None
  except OSError as e:
    raise WorkdirError(
        f"{path} cannot be read ({e.strerror}). Fix: make it readable "
        f"(chmod u+rw), or {fix}") from None


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
    """Entries of the folder that sbp_tf did not write, as paths relative
    to it: top-level names, and files or folders inside ``checkpoints/``,
    ``tensorboard/`` (:data:`OWNED_INSIDE`) and ``.worker<i>/``."""
    if not self.path.is_dir():
      return []
    out = []
    for p in sorted(self.path.iterdir()):
      if not _owned(p.name):
        out.append(p.name)
      elif p.is_symlink() or not p.is_dir():
        continue
      elif _WORKER.fullmatch(p.name):  # a worker's own workdir
        out += [f"{p.name}/{e}" for e in Workdir(p).foreign_entries()]
      elif p.name in OWNED_INSIDE:
        pattern = OWNED_INSIDE[p.name]
        out += [f"{p.name}/{e}" for e in _relative_paths(p)
                if not pattern.fullmatch(e)]
    return out

  def checkpoint_epochs(self) -> List[int]:
    """Epochs N with a ``checkpoints/ckpt-N.index``, newest first."""
    out = []
    if self.ckpt_dir.is_dir():
      for p in self.ckpt_dir.iterdir():
        m = re.fullmatch(r"ckpt-(\d+)\.index", p.name)
        if m:
          out.append(int(m.group(1)))
    return sorted(out, reverse=True)

  def tidy_checkpoints(self) -> None:
    """Repairs ``checkpoints/`` before resuming, never trusting TensorFlow's
    index file ``checkpoints/checkpoint``.

    Removes the ``<prefix>_temp/`` folders a write interrupted by a kill or
    a full disk leaves behind, and rewrites the index from the ``ckpt-N``
    found on disk (oldest first, with timestamps), so that a missing or
    damaged index neither blocks the resume nor stops
    ``tf.train.CheckpointManager`` from deleting all but the last two.
    Says what it repaired.
    """
    if not self.ckpt_dir.is_dir():
      return
    for p in sorted(self.ckpt_dir.glob("*_temp")):
      if p.is_dir() and OWNED_INSIDE["checkpoints"].fullmatch(p.name):
        shutil.rmtree(p)
        log.say(f"removed {p}: left by an interrupted checkpoint write.")
    epochs = sorted(self.checkpoint_epochs())
    index = self.ckpt_dir / "checkpoint"
    problem = _index_problem(index, [f"ckpt-{n}" for n in epochs])
    if problem is None:
      return
    if not epochs:  # an index of checkpoints that are gone: TF would fail
      index.unlink()
      log.say(f"removed {index} (TensorFlow's checkpoint index): it {problem}.")
      return
    stamps, last = [], 0.0
    for n in epochs:  # strictly increasing: the manager keeps their order
      last = max((self.ckpt_dir / f"ckpt-{n}.index").stat().st_mtime,
                 last + 1e-3)
      stamps.append(last)
    lines = [f'model_checkpoint_path: "ckpt-{epochs[-1]}"']
    lines += [f'all_model_checkpoint_paths: "ckpt-{n}"' for n in epochs]
    lines += [f"all_model_checkpoint_timestamps: {t:.6f}" for t in stamps]
    # Older than every checkpoint: the manager may delete all of them.
    lines.append(f"last_preserved_timestamp: {stamps[0] - 1:.6f}")
    files.write_text(index, "\n".join(lines) + "\n")
    log.say(f"{index} (TensorFlow's checkpoint index) {problem}; rebuilt "
            f"it from the {len(epochs)} checkpoint(s) found "
            f"({', '.join(f'ckpt-{n}' for n in epochs)}).")

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
  def disk_full_is_an_error(self):
    """Turns a full disk (or quota) while the run writes into a one-line
    WorkdirError saying what is kept and that a rerun resumes.

    Every file is written atomically and ``state.json`` last, so the
    workdir is consistent at any such failure.
    """
    try:
      yield self
    except Exception as e:  # pylint: disable=broad-except
      cause = _disk_full(e)
      if cause is None:
        raise
      try:
        state = self.state()
      except WorkdirError:
        state = {"status": NEW, "epochs_done": 0}
      n = int(state["epochs_done"])
      if state["status"] == NEW:
        kept = ("no epoch was done yet; rerunning the same command starts "
                "the run again")
      else:
        kept = (f"the workdir is consistent ({n} epoch(s) done and "
                "checkpointed); rerunning the same command resumes after "
                f"epoch {n}")
      raise WorkdirError(
          f"the disk is full while writing workdir {str(self.path)!r} "
          f"({cause}); {kept}. Fix: free space on that disk (or move the "
          "workdir to a larger one), then rerun the same command.") from None

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
    if self.path.is_dir() and not os.access(self.path,
                                            os.R_OK | os.W_OK | os.X_OK):
      # Checked first: listing or reading it would raise PermissionError.
      raise WorkdirError(
          f"workdir {str(self.path)!r} is not writable and readable by this "
          "user (permission denied, or a read-only file system). Fix: make "
          "it writable and readable (chmod u+rwx) or pass another "
          "--workdir.")
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
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def _disk_full(e: BaseException):
  """The first line of the error in ``e``'s chain that says the disk (or a
  quota) is full, or None. TensorFlow reports it as a ResourceExhaustedError
  or another OpError whose message holds the OS error text."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    text = str(e).strip()
    if (isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS) or any(
        t in text for t in _DISK_FULL_TEXT):
      first = (text.splitlines() or [""])[0][:200]
      return f"{type(e).__name__}: {first}"
    e = e.__cause__ or e.__context__
  return None


def _relative_paths(folder: pathlib.Path) -> List[str]:
  """Every file and folder under ``folder``, relative to it (posix)."""
  return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _index_problem(index: pathlib.Path, found: List[str]):
  """What is wrong with TensorFlow's checkpoint index ``index`` given the
  checkpoints ``found`` on disk (``["ckpt-1", ...]``), or None if it is
  readable and lists exactly those."""
  if not index.exists():
    return "is missing" if found else None
  try:
    text = index.read_text()
  except (OSError, UnicodeDecodeError) as e:
    return f"is damaged ({type(e).__name__})"
  latest = re.findall(r'^model_checkpoint_path: "(.*)"$', text, re.M)
  listed = re.findall(r'^all_model_checkpoint_paths: "(.*)"$', text, re.M)
  if len(latest) != 1:
    return "is damaged (no model_checkpoint_path)"
  names = sorted(os.path.basename(p) for p in listed)
  if names != sorted(found):
    return (f"lists {', '.join(names) or 'nothing'} but the folder holds "
            f"{', '.join(found) or 'no epoch checkpoint'}")
  return None


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
  return (f"restore {name} from a backup and rerun (the run resumes where "
          "it stopped), or pass --overwrite (overwrite=True) to discard the "
          "run and start over.")


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
