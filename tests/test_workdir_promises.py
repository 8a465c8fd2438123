"""The workdir's last promises (issue 25), one test per hole it found.

Each test failed before its fix: --overwrite deleting a user's file inside
checkpoints/ or tensorboard/, a damaged or deleted TensorFlow checkpoint
index, a deleted config.json, a replaced masks.npz, a full disk, model
options, an unreadable workdir and x/y of different lengths given as
tracebacks, a finished run's damaged metrics.json or deleted model.keras,
a missing $SBP_DATA_DIR, a checkpoint's leftover temp folder, and absl's
FATAL line for an unknown flag or a bad value. The experiment tests share
one tiny finished run (2 epochs of a 3-layer MLP on 512 images) and work on
copies of it.
"""

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sbp_tf import config as sbp_config
from sbp_tf import experiment
from sbp_tf import pruning
from sbp_tf.compat import keras, tf
from sbp_tf.training import workdir as wd_lib

from experiment_testlib import (finished_run, interrupted_copy, snapshot,
                                tiny_config)

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCKS = (wd_lib.LOCK, wd_lib.LOCK_INFO)


@pytest.fixture(scope="module")
def finished(shared_data, tmp_path_factory):
  del shared_data  # the data helper finds the offline copy itself
  return finished_run(tmp_path_factory, "promises")


def _files(path):
  """snapshot() without the lock files (a run re-creates them)."""
  return {k: v for k, v in snapshot(path).items() if k not in LOCKS}


def _ckpt_epochs(path):
  return sorted(wd_lib.Workdir(path).checkpoint_epochs())


def _kernels(path, epoch):
  reader = tf.train.load_checkpoint(str(path / "checkpoints" / f"ckpt-{epoch}"))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith("model/")}


# --- 1. --overwrite deletes only what sbp_tf wrote, inside its folders too. -

@pytest.mark.parametrize("name", ["checkpoints/my_best_backup.txt",
                                  "tensorboard/my_plot.txt"])
def test_overwrite_refuses_user_files_inside_owned_folders(finished, tmp_path,
                                                           name):
  cfg, src, _ = finished
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  # What TensorFlow itself leaves in checkpoints/ is sbp_tf's to delete ...
  temp = dst / "checkpoints" / "ckpt-3_temp"
  temp.mkdir()
  (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
  (dst / "checkpoints" / "checkpoint.tmp0123abcd").write_text("x")
  (dst / name).write_text("the user's")  # ... the user's file is not
  before = _files(dst)
  with pytest.raises(wd_lib.WorkdirError) as e:
    experiment.run(cfg, dst, overwrite=True)
  msg = str(e.value)
  assert "\n" not in msg and f"sbp_tf did not write ({name})" in msg
  assert "nothing was deleted" in msg and "Fix:" in msg
  assert _files(dst) == before  # the finished run is untouched too
  (dst / name).unlink()
  assert wd_lib.Workdir(dst).foreign_entries() == []
  wd_lib.Workdir(dst).clear()
  assert [p.name for p in dst.iterdir() if p.name not in LOCKS] == []


# --- 2. Resume does not trust TensorFlow's index file. ---------------------

@pytest.mark.parametrize("content", [b"\x8b\xff\x00garbage\xfe", b""])
def test_damaged_checkpoint_index_is_rebuilt(finished, tmp_path, capsys,
                                             content):
  cfg, dst = interrupted_copy(finished, tmp_path)
  (dst / "checkpoints" / "checkpoint").write_bytes(content)
  metrics = experiment.run(cfg, dst)
  out = capsys.readouterr().out
  assert "TensorFlow's checkpoint index) is damaged" in out, out
  assert "rebuilt it from the 2 checkpoint(s) found (ckpt-1, ckpt-2)" in out
  assert metrics["resumed_from_epoch"] == 2  # no epoch redone
  state = tf.train.get_checkpoint_state(str(dst / "checkpoints"))
  assert state.model_checkpoint_path.endswith("ckpt-2")


def _interrupted_after(cfg, workdir, epoch, monkeypatch):
  """Runs ``cfg`` in ``workdir`` and stops it right after epoch ``epoch``'s
  checkpoint and state (as a kill there would)."""
  from sbp_tf import callbacks as cb_lib  # pylint: disable=g-import-not-at-top
  original = cb_lib.EpochCheckpoint.on_epoch_end

  class Stop(Exception):
    pass

  def stop(self, e, logs=None):
    original(self, e, logs)
    if e + 1 == epoch:
      raise Stop()

  with monkeypatch.context() as m:
    m.setattr(cb_lib.EpochCheckpoint, "on_epoch_end", stop)
    with pytest.raises(Stop):
      experiment.run(cfg, workdir)


def test_deleted_index_keeps_the_last_two_and_temp_leftovers_go(
    shared_data, tmp_path, capsys, monkeypatch):
  del shared_data
  cfg, path = tiny_config(epochs=3), tmp_path / "run"
  _interrupted_after(cfg, path, 2, monkeypatch)
  assert _ckpt_epochs(path) == [1, 2]
  (path / "checkpoints" / "checkpoint").unlink()
  # A kill during epoch 3's checkpoint write leaves TF's temp folder.
  temp = path / "checkpoints" / "ckpt-3_temp"
  temp.mkdir()
  (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 64)
  capsys.readouterr()
  metrics = experiment.run(cfg, path)
  out = capsys.readouterr().out
  assert metrics["resumed_from_epoch"] == 2
  assert "checkpoint index) is missing; rebuilt it" in out, out
  assert f"removed {temp}: left by an interrupted checkpoint write" in out
  assert not temp.exists()
  assert _ckpt_epochs(path) == [2, 3]  # the retention promise holds


# --- 3. A deleted config.json is one line with the fix. -------------------

@pytest.mark.parametrize("finished_run", [False, True])
def test_deleted_config_json_is_one_line_error(finished, tmp_path,
                                               finished_run):
  cfg, src, _ = finished
  if finished_run:
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
  else:
    cfg, dst = interrupted_copy(finished, tmp_path)
  (dst / "config.json").unlink()
  before = _files(dst)
  with pytest.raises(wd_lib.WorkdirError) as e:
    experiment.run(cfg, dst)
  msg = str(e.value)
  assert "\n" not in msg and str(dst / "config.json") + " is missing" in msg
  assert "Fix: restore config.json" in msg and "--overwrite" in msg
  assert _files(dst) == before  # nothing lost


# --- 4. masks.npz is the one source of truth, checked on resume. ----------

def test_replaced_masks_npz_is_refused_on_resume(finished, tmp_path):
  cfg, dst = interrupted_copy(finished, tmp_path)
  own = pruning.Masks.load(str(dst / "masks.npz"))
  rng = np.random.default_rng(1)
  # Another run's masks: same shapes and density, other positions.
  other = pruning.Masks({k: rng.permutation(m.ravel()).reshape(m.shape)
                         for k, m in own.items()})
  assert other.density() == pytest.approx(own.density())
  other.save(str(dst / "masks.npz"))
  before = _files(dst)
  with pytest.raises(wd_lib.WorkdirError) as e:
    experiment.run(cfg, dst)
  msg = str(e.value)
  assert "\n" not in msg and "masks.npz does not match the checkpoint" in msg
  assert "after epoch 2" in msg and "Fix: put back this run's masks.npz" in msg
  assert _files(dst) == before
  own.save(str(dst / "masks.npz"))  # the right masks resume as before
  assert experiment.run(cfg, dst)["resumed_from_epoch"] == 2


def test_replaced_masks_npz_is_refused_on_keras3_resume(shared_data,
                                                        tmp_path):
  # Keras 3 checkpoints hold no masks: the restored kernels are checked.
  del shared_data
  keras3 = pytest.importorskip("keras")
  if not keras3.__version__.startswith("3."):
    pytest.skip("the keras package is not Keras 3")
  cfg = tiny_config(epochs=1)
  cfg.framework = "keras3"
  path = tmp_path / "run"
  experiment.run(cfg, path)
  wd_lib.Workdir(path).set_state(wd_lib.TRAINING, 1, epochs=1)
  own = pruning.Masks.load(str(path / "masks.npz"))
  rng = np.random.default_rng(1)
  pruning.Masks({k: rng.permutation(m.ravel()).reshape(m.shape)
                 for k, m in own.items()}).save(str(path / "masks.npz"))
  with pytest.raises(wd_lib.WorkdirError,
                     match=r"masks\.npz does not match the checkpoint "
                     r"restored after epoch 1.*Fix:"):
    experiment.run(cfg, path)


# --- 5. A full disk is one line; the rerun resumes bit for bit. ------------

def test_disk_full_at_a_checkpoint_then_rerun_resumes_bit_for_bit(
    finished, tmp_path, monkeypatch):
  cfg, dst = interrupted_copy(finished, tmp_path, epochs_done=1)
  (dst / "checkpoints" / "ckpt-2.index").unlink()
  for p in (dst / "checkpoints").glob("ckpt-2.data-*"):
    p.unlink()

  def full(self, *a, **k):
    raise tf.errors.ResourceExhaustedError(
        None, None, f"{self.directory}/ckpt-2_temp/part-00000-of-00001.data"
        "-00000-of-00001.tempstate1; No space left on device")

  with monkeypatch.context() as m:
    m.setattr(tf.train.CheckpointManager, "save", full)
    with pytest.raises(wd_lib.WorkdirError) as e:
      experiment.run(cfg, dst)
  msg = str(e.value)
  assert "\n" not in msg and "the disk is full" in msg
  assert "ResourceExhaustedError" in msg and "1 epoch(s) done" in msg
  assert "resumes after epoch 1" in msg and "Fix: free space" in msg
  assert wd_lib.Workdir(dst).state()["epochs_done"] == 1
  metrics = experiment.run(cfg, dst)
  assert metrics["resumed_from_epoch"] == 1
  want, got = _kernels(finished[1], 2), _kernels(dst, 2)
  assert sorted(want) == sorted(got)
  for k in want:
    assert np.array_equal(want[k], got[k]), k


def test_disk_full_at_the_final_save_then_rerun_finishes(finished, tmp_path,
                                                         monkeypatch):
  cfg, dst = interrupted_copy(finished, tmp_path)

  def full(self, *a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  with monkeypatch.context() as m:
    m.setattr(keras.Model, "save", full)
    with pytest.raises(wd_lib.WorkdirError) as e:
      experiment.run(cfg, dst)
  msg = str(e.value)
  assert "\n" not in msg and "[Errno 28]" in msg
  assert "2 epoch(s) done" in msg and "resumes after epoch 2" in msg
  assert wd_lib.Workdir(dst).state()["status"] == wd_lib.TRAINING
  metrics = experiment.run(cfg, dst)
  assert metrics["test_accuracy"] == finished[2]["test_accuracy"]
  assert (dst / "model.keras").exists()


# --- 6. Model options, unreadable workdirs, x/y lengths: one line. ---------

def test_model_options_are_checked_before_anything_is_written(tmp_path):
  cfg = tiny_config()
  cfg.model.options.width = 0
  with pytest.raises(ValueError,
                     match=r"model\.options\.width=0 must be an integer >= 1"
                     r".*Fix:"):
    sbp_config.resolve(cfg)
  # What only the builder knows is reported the same way, before writing.
  cfg.model.options.width = 32
  cfg.model.options.activation = "nope"
  with pytest.raises(ValueError) as e:
    experiment.run(cfg, tmp_path / "run")
  assert isinstance(e.value, sbp_config.ConfigError)  # the binary's one line
  msg = str(e.value)
  assert "\n" not in msg and "model 'ffnn' cannot be built from its options" in msg
  assert "Unknown activation 'nope'" in msg and "Fix:" in msg
  assert not (tmp_path / "run").exists()


def test_workdir_without_permissions_is_one_line_error(tmp_path,
                                                       monkeypatch):
  path = tmp_path / "run"
  wd_lib.Workdir(path).create(tiny_config())
  if os.geteuid() != 0:
    path.chmod(0)
  else:  # root ignores modes: give what the kernel gives other users
    inside = str(path) + os.sep
    real_stat, real_access = pathlib.Path.stat, os.access

    def stat(self, **kw):
      if str(self).startswith(inside):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))
      return real_stat(self, **kw)

    monkeypatch.setattr(pathlib.Path, "stat", stat)
    monkeypatch.setattr(wd_lib.os, "access", lambda p, mode, **k: (
        False if str(p) == str(path) else real_access(p, mode, **k)))
  try:
    with pytest.raises(wd_lib.WorkdirError) as e:
      experiment.run(tiny_config(), path)
  finally:
    path.chmod(0o755)
  msg = str(e.value)
  assert "\n" not in msg and str(path) in msg and "permission" in msg
  assert "Fix: make it writable and readable" in msg


def test_prune_with_x_and_y_of_different_lengths_is_one_line():
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                            keras.layers.Dense(3)])
  before = [w.copy() for w in model.get_weights()]
  x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
  y = np.arange(13) % 3
  with pytest.raises(ValueError) as e:
    pruning.prune(model, "sbp", 0.5, (x, y))
  msg = str(e.value)
  assert "\n" not in msg and "x and y have different lengths" in msg
  assert "16 example(s) but 13 label(s)" in msg and "Fix:" in msg
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


# --- 7. Finished runs repaired; SBP_DATA_DIR; flags in our one-line form. --

def test_finished_run_rebuilds_damaged_metrics_json(finished, tmp_path,
                                                    capsys):
  cfg, src, first = finished
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  want = (dst / "metrics.json").read_text()
  (dst / "metrics.json").write_text("[{\"epoch\": 1, ")
  out = experiment.run(cfg, dst)
  assert out["already_finished"] and out["test_accuracy"] == first[
      "test_accuracy"]
  assert "rebuilt it from metrics.csv (2 rows)" in capsys.readouterr().out
  rows = wd_lib.Workdir(dst).metrics()
  assert [r["epoch"] for r in rows] == [1, 2]
  assert rows[1]["accuracy"] == pytest.approx(
      json.loads(want)[1]["accuracy"])


def test_finished_run_rebuilds_a_deleted_model(finished, tmp_path, capsys):
  cfg, src, first = finished
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  (dst / "model.keras").unlink()
  out = experiment.run(cfg, dst)
  assert "model.keras of the finished run" in capsys.readouterr().out
  assert out["test_accuracy"] == first["test_accuracy"]
  assert out["epochs_done"] == 2 and not out.get("already_finished")
  loaded = keras.models.load_model(str(dst / "model.keras"))
  assert len(loaded.layers) == len(keras.models.load_model(
      str(src / "model.keras")).layers)


def test_sbp_data_dir_naming_a_missing_folder_is_an_error(tmp_path,
                                                          monkeypatch):
  from sbp_tf.data import sources  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("SBP_DATA_DIR", str(tmp_path / "nope"))
  with pytest.raises(sources.DataNotFoundError) as e:
    sources.find_local("fashion_mnist", None)
  msg = str(e.value)
  assert f"SBP_DATA_DIR names {str(tmp_path / 'nope')!r}" in msg
  assert "does not exist" in msg and "Fix:" in msg


def _env():
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  return env


@pytest.mark.parametrize("flag,want", [
    ("--epochs=3", "unknown flag --epochs. Fix: did you mean "
     "--config.train.epochs?"),
    ("--config.prune.sparsity=abc", "bad value for --config.prune.sparsity: "
     "could not convert string to float: 'abc'. Fix: pass a float value, "
     "e.g. the default: --config.prune.sparsity=0.9."),
    ("--config.model.options.width=0",
     "model.options.width=0 must be an integer >= 1"),
])
def test_binary_flag_mistakes_are_our_one_line_form(tmp_path, flag, want):
  out = subprocess.run(
      [sys.executable, "-m", "sbp_tf.train",
       "--config=configs/cpu_fashion_mnist_ffnn.py",
       f"--workdir={tmp_path}/w", flag],
      capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
  assert out.returncode == 1, out.stderr[-2000:]
  assert "Traceback" not in out.stderr and "FATAL" not in out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("[sbp_tf] error: ") and "Fix:" in last, last
  assert want in last, last
  assert not (tmp_path / "w").exists()
