"""Fault injection on workdirs and saved files (issue 13).

Each test reproduces one defect of the issue and failed before its fix:
foreign folders with --overwrite, concurrent processes, truncated and
missing checkpoints, garbage JSON, missing masks/state, saved formats in a
fresh process, Keras 3 models, corrupt mask files, kill-and-resume with
augmentation (bit for bit), data paths on resume, and one-line errors of
the binaries for command-line mistakes. The experiment tests
share one tiny finished run (2 epochs of a 3-layer MLP on 512 images) and
work on copies of it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from sbp_tf import config as sbp_config
from sbp_tf import experiment
from sbp_tf import pruning
from sbp_tf.compat import keras, tf
from sbp_tf.training import workdir as wd_lib

from experiment_testlib import (finished_run, interrupted_copy, snapshot,
                                tiny_config)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _python(code, *args):
  return subprocess.run([sys.executable, "-c", code, *map(str, args)],
                        capture_output=True, text=True, env=_env(), cwd=REPO,
                        timeout=300)




# --- Defect 1: ownership; --overwrite deletes only what sbp_tf wrote. -------

def test_overwrite_of_a_foreign_folder_deletes_nothing(tmp_path):
  # The repro: a foreign config.json next to someone's model file.
  x = tmp_path / "x"
  x.mkdir()
  (x / "config.json").write_text("{}")
  (x / "pytorch_model.bin").write_text("w")
  before = snapshot(x)
  with pytest.raises(wd_lib.WorkdirError) as e:
    experiment.run(tiny_config(epochs=1), x, overwrite=True)
  msg = str(e.value)
  assert "\n" not in msg and "holds no sbp_tf run" in msg
  assert "pytorch_model.bin" in msg and "Fix:" in msg
  assert snapshot(x) == before
  assert not wd_lib.Workdir(x).exists()


def test_binary_overwrite_of_a_foreign_folder_is_one_line_error(tmp_path):
  # The command line, verbatim but for the folder.
  x = tmp_path / "x"
  x.mkdir()
  (x / "config.json").write_text("{}")
  (x / "pytorch_model.bin").write_text("w")
  out = subprocess.run(
      [sys.executable, "-m", "sbp_tf.train",
       "--config=configs/cpu_fashion_mnist_ffnn.py", f"--workdir={x}",
       "--overwrite", "--config.train.epochs=1"],
      capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
  assert out.returncode == 1, out.stderr[-2000:]
  assert "Traceback" not in out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("[sbp_tf] error: workdir") and "Fix:" in last
  assert sorted(p.name for p in x.iterdir()) == ["config.json",
                                                  "pytorch_model.bin"]
  assert (x / "pytorch_model.bin").read_text() == "w"


def test_legacy_workdir_needs_sbp_tf_schema_and_state(tmp_path):
  wd = wd_lib.Workdir(tmp_path)
  (tmp_path / "config.json").write_text("{}")
  (tmp_path / "state.json").write_text('{"status": "new", "epochs_done": 0}')
  assert not wd.exists()  # foreign config.json: not ours
  (tmp_path / "config.json").write_text(
      json.dumps(sbp_config.to_dict(tiny_config())))
  assert wd.exists()  # a workdir written before the marker existed


def test_clear_refuses_a_workdir_holding_foreign_files(tmp_path):
  wd = wd_lib.Workdir(tmp_path / "run")
  wd.create(tiny_config())
  assert (wd / wd_lib.MARKER).exists()
  marker = json.loads((wd / wd_lib.MARKER).read_text())
  assert marker["format"] == wd_lib.FORMAT and marker["version"] == 1
  (wd / "checkpoints" / "ckpt-1.index").write_text("x")
  (wd / "my_notes.txt").write_text("keep me")
  (wd / "data").mkdir()
  before = snapshot(wd.path)
  with pytest.raises(wd_lib.WorkdirError) as e:
    wd.clear()
  msg = str(e.value)
  assert "\n" not in msg and "nothing was deleted" in msg
  assert "data, my_notes.txt" in msg and "Fix:" in msg
  assert snapshot(wd.path) == before and (wd / "data").is_dir()
  # The different-config error names the run as sbp_tf's and what
  # --overwrite deletes.
  other = tiny_config()
  other.prune.sparsity = 0.5
  with pytest.raises(wd_lib.WorkdirError, match="deletes only the files "
                     "sbp_tf wrote"):
    wd.check_compatible(other)
  # Without the foreign entries, clear deletes sbp_tf's files only.
  (wd / "my_notes.txt").unlink()
  (wd / "data").rmdir()
  wd.clear()
  assert wd.path.is_dir() and not list(wd.path.iterdir())


# --- Defect 2: one run per workdir (a real second process). ----------------

_HOLDER = """
import sys, time
from sbp_tf.training import workdir as wd_lib
with wd_lib.Workdir(sys.argv[1]).lock():
  print("locked", flush=True)
  time.sleep(120)
"""


def test_second_process_fails_at_once_naming_the_holder(tmp_path):
  path = tmp_path / "run"
  holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), cwd=REPO)
  try:
    assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
    t0 = time.time()
    with pytest.raises(wd_lib.WorkdirLocked) as e:
      experiment.run(tiny_config(epochs=1), path)
    assert time.time() - t0 < 10  # at once, not after a wait
    msg = str(e.value)
    assert "\n" not in msg and f"pid {holder.pid}" in msg
    assert "in use by another sbp_tf run" in msg and "Fix:" in msg
    assert not (path / "config.json").exists()  # nothing written
  finally:
    os.kill(holder.pid, signal.SIGKILL)  # a holder killed mid-run ...
    holder.wait()
  with wd_lib.Workdir(path).lock():  # ... leaves no stale lock
    pass


# --- Defects 3, 4 and 7 on a real (tiny) finished run. --------------------

@pytest.fixture(scope="module")
def finished(shared_data, tmp_path_factory):
  del shared_data  # the data helper finds the offline copy itself
  return finished_run(tmp_path_factory, "faults")



def test_finished_run_has_marker_and_no_lock_holder(finished):
  _, workdir, _ = finished
  assert wd_lib.Workdir(workdir).exists()
  assert (workdir / wd_lib.MARKER).exists()
  assert not (workdir / wd_lib.LOCK_INFO).exists()  # released on exit
  assert wd_lib.Workdir(workdir).foreign_entries() == []


def test_truncated_latest_checkpoint_falls_back_to_the_previous(
    finished, tmp_path, capsys):
  cfg, dst = interrupted_copy(finished, tmp_path)
  data = dst / "checkpoints" / "ckpt-2.data-00000-of-00001"
  with open(data, "r+b") as f:
    f.truncate(min(1000, data.stat().st_size // 2))
  metrics = experiment.run(cfg, dst)
  out = capsys.readouterr().out
  assert "resuming from ckpt-1 (epoch 1)" in out and "1 epoch(s)" in out
  assert "ckpt-2" in out
  assert metrics["resumed_from_epoch"] == 1 and metrics["test_accuracy"] > 0.3
  assert [r["epoch"] for r in wd_lib.Workdir(dst).metrics()] == [1, 2]


def test_missing_index_and_bad_older_checkpoint_fall_back_to_init(
    finished, tmp_path, capsys):
  cfg, dst = interrupted_copy(finished, tmp_path)
  (dst / "checkpoints" / "ckpt-2.index").unlink()
  (dst / "checkpoints" / "ckpt-1.index").write_bytes(b"garbage, not sstable")
  metrics = experiment.run(cfg, dst)
  out = capsys.readouterr().out
  assert "resuming from init (epoch 0)" in out and "2 epoch(s)" in out
  assert metrics["resumed_from_epoch"] == 0


def test_state_claiming_an_absent_checkpoint_uses_the_newest_intact(
    finished, tmp_path, capsys):
  cfg, dst = interrupted_copy(finished, tmp_path, epochs_done=9)
  metrics = experiment.run(cfg, dst)
  out = capsys.readouterr().out
  assert "ckpt-9" in out and "resuming from ckpt-2 (epoch 2)" in out
  assert metrics["resumed_from_epoch"] == 2


def test_missing_masks_next_to_checkpoints_is_an_error(finished, tmp_path):
  cfg, dst = interrupted_copy(finished, tmp_path)
  (dst / "masks.npz").unlink()
  with pytest.raises(wd_lib.WorkdirError, match=r"masks\.npz is missing.*"
                     r"Fix: restore masks\.npz"):
    experiment.run(cfg, dst)
  assert (dst / "checkpoints" / "ckpt-2.index").exists()  # nothing lost


def test_missing_state_next_to_checkpoints_is_an_error(finished, tmp_path):
  cfg, dst = interrupted_copy(finished, tmp_path)
  (dst / "state.json").unlink()
  with pytest.raises(wd_lib.WorkdirError, match=r"state\.json is missing.*"
                     r"newest: epoch 2.*Fix:"):
    experiment.run(cfg, dst)


@pytest.mark.parametrize("name", ["state.json", "config.json"])
def test_garbage_json_names_the_file_and_the_fix(finished, tmp_path, name):
  cfg, dst = interrupted_copy(finished, tmp_path)
  (dst / name).write_text('{"status": "trai')
  with pytest.raises(wd_lib.WorkdirError) as e:
    experiment.run(cfg, dst)
  msg = str(e.value)
  assert str(dst / name) in msg and "not valid JSON" in msg
  assert "Fix: restore" in msg and "\n" not in msg


def test_garbage_metrics_json_is_rebuilt_from_csv(finished, tmp_path):
  cfg, dst = interrupted_copy(finished, tmp_path)
  want = json.loads((dst / "metrics.json").read_text())
  (dst / "metrics.json").write_text("[{\"epoch\": 1, ")
  metrics = experiment.run(cfg, dst)
  assert metrics["resumed_from_epoch"] == 2
  rows = json.loads((dst / "metrics.json").read_text())
  assert [r["epoch"] for r in rows] == [1, 2]
  assert rows[0]["accuracy"] == pytest.approx(want[0]["accuracy"])


def test_garbage_results_json_of_a_finished_run_is_rebuilt(finished,
                                                            tmp_path):
  cfg, src, first = finished
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  (dst / "results.json").write_text("not json")
  metrics = experiment.run(cfg, dst)
  assert metrics["test_accuracy"] == pytest.approx(first["test_accuracy"],
                                                   abs=1e-6)
  stored = json.loads((dst / "results.json").read_text())
  assert stored["test_accuracy"] == metrics["test_accuracy"]


def test_workdir_json_helpers_name_the_file(tmp_path):
  wd = wd_lib.Workdir(tmp_path)
  wd.create(tiny_config())
  (tmp_path / "results.json").write_text("{")
  with pytest.raises(wd_lib.WorkdirError, match="results.json is damaged"):
    wd.results()
  wd.write_metrics([{"epoch": 1, "loss": 0.5}])
  (tmp_path / "metrics.csv").write_text("garbage\n\x00")
  (tmp_path / "metrics.json").write_text("[")
  with pytest.raises(wd_lib.WorkdirError, match=r"metrics\.json is damaged"
                     r".*Fix: delete metrics\.json and metrics\.csv"):
    wd.metrics()


# --- Defect 5: saved zoo models load the documented way, fresh process. ----

_SAVE = """
import sys
import sbp_tf
from sbp_tf import models, pruning, tfmot
m = models.build("ffnn", 10, (8, 8, 1), depth=2, width=8)
w = tfmot.wrap(m, pruning.Masks.ones_like(m))
w.compile(loss="mse")
w.save(sys.argv[1] + "/a.h5")
tfmot.strip(w).save(sys.argv[1] + "/model.keras")
"""

_LOAD = """
import sys
import sbp_tf
import tf_keras
from sbp_tf import tfmot
a = tfmot.load_model(sys.argv[1] + "/a.h5")
b = tf_keras.models.load_model(sys.argv[1] + "/model.keras")
print("loaded", type(a.layers[2].layer.kernel_initializer).__name__,
      type(b.layers[2].kernel_initializer).__name__)
"""


def test_zoo_models_load_in_a_fresh_process(tmp_path):
  saved = _python(_SAVE, tmp_path)
  assert saved.returncode == 0, saved.stderr[-2000:]
  out = _python(_LOAD, tmp_path)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "loaded EdgeOfChaos EdgeOfChaos" in out.stdout


# --- Defect 10 (part): Keras 3 models get a one-line TypeError. ------------

def test_keras3_model_gets_a_one_line_type_error():
  keras3 = pytest.importorskip("keras")
  if not keras3.__version__.startswith("3."):
    pytest.skip("the keras package is not Keras 3")
  m3 = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
  from sbp_tf import tfmot as sbp_tfmot  # pylint: disable=g-import-not-at-top
  calls = [lambda: pruning.prune(m3, "sbp", 0.5),
           lambda: sbp_tfmot.wrap(m3, {}),
           lambda: pruning.Masks.ones_like(m3)]
  for call in calls:
    with pytest.raises(TypeError) as e:
      call()
    msg = str(e.value)
    assert "Keras 3 model" in msg and "import sbp_tf" in msg
    assert "\n" not in msg


# --- Item 9 (part): Masks.save/load symmetry, corrupt files name the path. --

def test_masks_load_mirrors_save_and_names_corrupt_files(tmp_path):
  model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])
  masks = pruning.Masks.ones_like(model)
  written = masks.save(str(tmp_path / "m"))
  assert written.endswith("m.npz")
  back = pruning.Masks.load(str(tmp_path / "m"))
  assert list(back) == list(masks)
  raw = open(written, "rb").read()
  bad = tmp_path / "bad.npz"
  for data in (raw[:len(raw) // 2], b"\x00" * 64, raw[:40] + b"x" + raw[41:]):
    bad.write_bytes(data)
    with pytest.raises(ValueError) as e:
      pruning.Masks.load(str(bad))
    assert str(bad) in str(e.value) and "Fix:" in str(e.value)
  np.testing.assert_array_equal(back[list(back)[0]], masks[list(masks)[0]])


# --- Defect 6: a resumed run is the run that was interrupted. --------------

class _Interrupted(Exception):
  pass


def _kernels(workdir, epoch):
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints" /
                                        f"ckpt-{epoch}"))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if "OPTIMIZER_SLOT" not in k and k.startswith("model/")}


@pytest.mark.parametrize("steps_per_epoch", [None, 5])
def test_kill_and_resume_reproduces_the_uninterrupted_run_bit_for_bit(
    shared_data, tmp_path, monkeypatch, steps_per_epoch):
  # Augmentation on, 448 images in 7 batches of 64; steps_per_epoch=5 makes
  # epochs straddle passes over the data. The run is stopped right after
  # epoch 1's checkpoint (as a kill there would) and resumed.
  del shared_data
  from sbp_tf import callbacks as cb_lib  # pylint: disable=g-import-not-at-top
  cfg = tiny_config(epochs=3, steps_per_epoch=steps_per_epoch)
  cfg.dataset.augment, cfg.dataset.limit_train = True, 448
  full = experiment.run(cfg, tmp_path / "full")
  original = cb_lib.EpochCheckpoint.on_epoch_end

  def stop_after_epoch_1(self, epoch, logs=None):
    original(self, epoch, logs)
    if epoch + 1 == 1:
      raise _Interrupted()

  monkeypatch.setattr(cb_lib.EpochCheckpoint, "on_epoch_end",
                      stop_after_epoch_1)
  with pytest.raises(_Interrupted):
    experiment.run(cfg, tmp_path / "resumed")
  monkeypatch.setattr(cb_lib.EpochCheckpoint, "on_epoch_end", original)
  assert wd_lib.Workdir(tmp_path / "resumed").state()["epochs_done"] == 1
  resumed = experiment.run(cfg, tmp_path / "resumed")
  assert resumed["resumed_from_epoch"] == 1
  want, got = _kernels(tmp_path / "full", 3), _kernels(tmp_path / "resumed", 3)
  assert sorted(want) == sorted(got) and len(want) >= 3
  for k in want:
    assert np.array_equal(want[k], got[k]), k
  assert resumed["test_accuracy"] == full["test_accuracy"]


def test_train_stream_epoch_depends_only_on_seed_and_epoch():
  from sbp_tf.data import catalog, preprocess  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (10, 8, 8, 1), np.uint8)
  y = np.arange(10, dtype=np.int32)
  meta = catalog.info("mnist")
  meta = type(meta)(**{**meta.__dict__, "input_shape": (8, 8, 1)})

  def take(start, n, seed=0):
    ds = preprocess.from_arrays(x, y, meta, batch_size=4, shuffle=True,
                                augment="pad_crop", seed=seed,
                                start_step=start)
    return [(a.numpy(), b.numpy()) for a, b in ds.take(n)]

  whole = take(0, 9)  # 3 batches per pass: passes 0, 1, 2
  for start in (1, 3, 4, 8):
    part = take(start, 9 - start)
    for (a, b), (c, d) in zip(whole[start:], part):
      assert np.array_equal(a, c) and np.array_equal(b, d)
  passes = [np.concatenate([b for _, b in whole[i:i + 3]]) for i in (0, 3, 6)]
  assert all(sorted(p) == list(range(10)) for p in passes)  # each a pass
  assert not np.array_equal(passes[0], passes[1])  # reshuffled per pass
  assert not np.array_equal(take(0, 1, seed=1)[0][1], whole[0][1])


# --- Defect 8: data paths are where data is found, not the experiment. ----

def test_resume_with_another_data_dir_is_allowed_and_logs_the_copy(
    finished, tmp_path, capsys, shared_data):
  cfg, dst = interrupted_copy(finished, tmp_path, epochs_done=1)
  moved = cfg.copy_and_resolve_references()
  moved.dataset.data_dir = str(shared_data)  # the data "moved" mid-run
  moved.dataset.cache_dir = str(tmp_path / "cache")
  metrics = experiment.run(moved, dst)
  out = capsys.readouterr().out
  assert metrics["resumed_from_epoch"] == 1
  data_lines = [l for l in out.splitlines() if l.startswith("[sbp_tf] data:")]
  assert len(data_lines) == 1 and str(shared_data) in data_lines[0], out
  # The dataset and its split sizes are still the run's identity.
  other = moved.copy_and_resolve_references()
  other.dataset.limit_train = 256
  with pytest.raises(wd_lib.WorkdirError, match=r"dataset\.limit_train"):
    wd_lib.Workdir(dst).check_compatible(other)


def test_explicit_data_dir_that_does_not_exist_is_an_error(tmp_path):
  from sbp_tf.data import sources  # pylint: disable=g-import-not-at-top
  cfg = tiny_config(epochs=1)
  cfg.dataset.data_dir = str(tmp_path / "nope")
  with pytest.raises(sources.DataNotFoundError) as e:
    experiment.run(cfg, tmp_path / "run")
  assert f"data_dir {str(tmp_path / 'nope')!r} does not exist" in str(e.value)
  assert "--config.dataset.data_dir=" in str(e.value)
  assert not (tmp_path / "run" / "config.json").exists()  # nothing written
  text = sources.how_to_provide("cifar10")
  assert "--config.dataset.data_dir=" in text and "SBP_DATA_DIR" in text
  assert "flag --data_dir" not in text


# --- Defect 9 (binaries): user mistakes are one line, no traceback. -------

_GOOD = "configs/cpu_fashion_mnist_ffnn.py"


@pytest.mark.parametrize("binary,args,want", [
    ("train", ["--config=configs/nope.py"],
     "config file 'configs/nope.py' does not exist"),
    ("train", ["--config={tmp}/syntax.py"], "is not valid Python: "),
    ("train", ["--config={tmp}/noget.py"], "defines no get_config()"),
    ("train", [f"--config={_GOOD}", "--config.train.epoch=3"],
     "unknown field --config.train.epoch=3"),
    ("train", [f"--config={_GOOD}", "--config.dataset.data_dir={tmp}/nodata"],
     "data_dir '{tmp}/nodata' does not exist"),
    ("tune", [f"--config={_GOOD}", "--sparsities=abc"],
     "--sparsities: 'abc' is not a sparsity in [0, 1)"),
])
def test_binary_user_mistakes_are_one_line_errors(tmp_path, binary, args,
                                                  want):
  (tmp_path / "syntax.py").write_text("def get_config(:\n  pass\n")
  (tmp_path / "noget.py").write_text("X = 1\n")
  args = [a.replace("{tmp}", str(tmp_path)) for a in args]
  out = subprocess.run(
      [sys.executable, "-m", f"sbp_tf.{binary}", *args,
       f"--workdir={tmp_path}/w"],
      capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
  assert out.returncode != 0
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("[sbp_tf] error: ") and "Fix:" in last, last
  assert want.replace("{tmp}", str(tmp_path)) in last, last
  if "epoch=3" in want:
    assert 'Did you mean "epochs"' in last
  assert not (tmp_path / "w").exists()  # nothing written


# --- Defect 9 (rest): unusable workdirs; data checked before tracing. -------
def test_workdir_that_is_a_file_or_read_only_names_path_and_fix(
    tmp_path, monkeypatch):
  f = tmp_path / "afile"
  f.write_text("x")
  with pytest.raises(wd_lib.WorkdirError, match="is not a folder.*Fix:"):
    with wd_lib.Workdir(f).lock():
      pass
  ro = tmp_path / "ro"
  ro.mkdir()
  monkeypatch.setattr(wd_lib.os, "access", lambda *a, **k: False)
  with pytest.raises(wd_lib.WorkdirError,
                     match=f"{ro}.*not writable.*Fix: make it writable"):
    with wd_lib.Workdir(ro).lock():
      pass


def test_binary_workdir_that_is_a_file_is_a_one_line_error(tmp_path):
  f = tmp_path / "afile"
  f.write_text("x")
  out = subprocess.run(
      [sys.executable, "-m", "sbp_tf.train", f"--config={_GOOD}",
       f"--workdir={f}"],
      capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
  assert out.returncode == 1
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("[sbp_tf] error: ") and str(f) in last, last
  assert "Fix:" in last and f.read_text() == "x"


def _mlp(n_in=8, classes=3):
  keras.utils.set_random_seed(0)
  inp = keras.Input((n_in,))
  h = keras.layers.Dense(16, activation="relu")(inp)
  return keras.Model(inp, keras.layers.Dense(classes)(h))


def _xy(n=16, n_in=8, classes=3):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, n_in)).astype("float32"),
          rng.integers(0, classes, n).astype("int64"))


@pytest.mark.parametrize("bad,match", [
    ("range", r"Labels out of range: found 1\.\.5.*\[0, 3\).*Fix:"),
    ("onehot", r"one-hot\?.*Fix: pass integer labels"),
    ("shape", r"images have shape \(7,\).*expects \(8,\).*Fix:"),
    ("unbatched", r"single examples of shape \(8,\).*Fix: batch it"),
    ("nonint", r"not class indices.*Fix:"),
])
def test_prune_checks_the_first_batch_before_tracing(bad, match):
  model = _mlp()
  x, y = _xy()
  before = [w.copy() for w in model.get_weights()]
  data = (x, y)
  if bad == "range":
    data = (x, np.where(y == 0, 5, y))
  elif bad == "onehot":
    data = (x, np.eye(3, dtype="float32")[y])
  elif bad == "shape":
    data = (x[:, :7], y)
  elif bad == "unbatched":
    data = tf.data.Dataset.from_tensor_slices((x, y))
  elif bad == "nonint":
    data = (x, y + 0.5)
  with pytest.raises(ValueError, match=match):
    pruning.prune(model, "sbp", 0.5, data)
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_prune_accepts_valid_data_without_warnings():
  x, y = _xy()
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    pruning.prune(_mlp(), "sbp", 0.5, (x, y))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    pruning.prune(_mlp(), "sbp", 0.5, ds, num_batches=2)
    pruning.prune(_mlp(), "synflow", 0.5, None, rounds=2)
    pruning.prune(_mlp(), "magnitude", 0.5)
    # a regression model with a custom loss: float targets are fine
    reg = _mlp(classes=1)
    pruning.prune(reg, "sbp", 0.5, (x, x[:, :1] * 1.7),
                  loss=lambda t, p: tf.reduce_mean((t - p) ** 2, -1))


# --- Defect 10 (rest): a called subclassed model. ----------------------------
class _Sub(keras.Model):

  def __init__(self):
    super().__init__(name="sub")
    self.d1 = keras.layers.Dense(8, activation="relu")
    self.d2 = keras.layers.Dense(8)

  def call(self, x):
    return x + self.d2(self.d1(x))


@pytest.mark.parametrize("method", ["magnitude", "sbp"])
def test_called_subclassed_model_prunes_without_connectivity(method):
  keras.utils.set_random_seed(0)
  model = _Sub()
  x, y = _xy(classes=8)
  model(x)
  res = pruning.prune(model, method, 0.5, (x, y))
  assert res.diagnostics["connected"] is None
  assert res.diagnostics["reachable_fraction"] is None
  assert abs(res.masks.density() - 0.5) < 0.01


# --- Defect 11: umask, warnings for suspicious but valid input. -------------
def test_workdir_files_honour_the_umask(tmp_path):
  old = os.umask(0o022)
  try:
    wd_lib.write_json(tmp_path / "a.json", {"a": 1})
    wd_lib.write_text(tmp_path / "b.txt", "b")
    wd_lib.Workdir(tmp_path).write_metrics([{"epoch": 1, "loss": 0.5}])
  finally:
    os.umask(old)
  for name in ("a.json", "b.txt", "metrics.json", "metrics.csv"):
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_prune_warns_on_suspicious_data_and_empty_masks():
  x, y = _xy()
  with pytest.warns(UserWarning, match="labels are floats"):
    pruning.prune(_mlp(), "sbp", 0.5, (x, y.astype("float32")))
  xi = (np.abs(x) * 100).astype("uint8")
  with pytest.warns(UserWarning, match="uint8 in 0-255.*Fix:"):
    pruning.prune(_mlp(), "sbp", 0.5, (xi, y))
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
  with pytest.warns(UserWarning, match="num_batches=5.*only 2 batch"):
    pruning.prune(_mlp(), "sbp", 0.5, ds, num_batches=5)
  with pytest.warns(UserWarning, match="keep 0 of 176 weights"):
    pruning.prune(_mlp(), "magnitude", 0.999, on_collapse="ignore")
  model = _mlp()
  zero = pruning.Masks({k: np.zeros_like(m) for k, m in
                        pruning.Masks.ones_like(model).items()})
  with pytest.warns(UserWarning, match="keep 0 of"):
    zero.apply(model)
