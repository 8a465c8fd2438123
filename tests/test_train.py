"""End-to-end tests of the sbp_tf.train binary: run, kill-and-resume, errors."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sbp_tf.compat import tf

TRAIN = [sys.executable, "-m", "sbp_tf.train",
         "--config=configs/cpu_fashion_mnist_ffnn.py",
         "--config.model.options.width=32", "--config.model.options.depth=3",
         "--config.dataset.limit_train=512", "--config.dataset.limit_test=256",
         "--config.train.batch_size=64", "--config.export_tflite=False",
         "--config.train.verbose=2", "--strategy=default"]


def _env():
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [os.getcwd()] + env.get("PYTHONPATH", "").split(os.pathsep))
  return env


def _run(args, **kw):
  return subprocess.run(TRAIN + args, capture_output=True, text=True,
                        env=_env(), timeout=300, **kw)


def _sha(path):
  return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_config_field_fails_before_any_work(tmp_path):
  res = _run([f"--workdir={tmp_path}/w", "--config.prune.sparsity=1.5"])
  assert res.returncode != 0
  assert "prune.sparsity=1.5 is out of range [0, 1)" in res.stderr
  assert not (tmp_path / "w").exists()


def test_kill_after_pruning_before_the_first_epoch_then_resume(
    shared_data, tmp_path):
  # Killed between pruning and the end of epoch 1: the rerun restores the
  # pruned init checkpoint (not a re-pruning) and trains every epoch.
  del shared_data
  workdir = tmp_path / "w"
  args = [f"--workdir={workdir}", "--config.train.epochs=2",
          "--config.train.steps_per_epoch=20"]
  proc = subprocess.Popen(TRAIN + args, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=_env())
  state_file = workdir / "state.json"
  deadline = time.time() + 240
  try:
    while time.time() < deadline:
      if state_file.exists():
        try:
          if json.loads(state_file.read_text())["status"] == "pruned":
            break
        except json.JSONDecodeError:  # caught mid-write
          pass
      time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=30)
  state = json.loads(state_file.read_text())
  assert state["status"] == "pruned" and state["epochs_done"] == 0, state
  masks_sha = _sha(workdir / "masks.npz")

  res = _run(args)
  assert res.returncode == 0, res.stderr[-3000:]
  assert f"resuming {workdir} after epoch 0" in res.stdout
  assert "pruned ffnn" not in res.stdout
  metrics = json.loads((workdir / "results.json").read_text())
  assert metrics["resumed_from_epoch"] == 0 and metrics["epochs_done"] == 2
  assert _sha(workdir / "masks.npz") == masks_sha


def test_kill_after_an_epoch_then_resume(shared_data, tmp_path):
  del shared_data
  workdir = tmp_path / "w"
  # 6 epochs of 20 steps: slow enough to be killed mid-run.
  args = [f"--workdir={workdir}", "--config.train.epochs=6",
          "--config.train.steps_per_epoch=20"]
  proc = subprocess.Popen(TRAIN + args, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=_env())
  state_file = workdir / "state.json"
  deadline = time.time() + 240
  try:
    while time.time() < deadline:
      if state_file.exists():
        if json.loads(state_file.read_text())["epochs_done"] >= 1:
          break
      time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=30)
  state = json.loads(state_file.read_text())
  done = state["epochs_done"]
  assert state["status"] == "training" and 1 <= done < 6, state
  masks_sha = _sha(workdir / "masks.npz")
  rows = json.loads((workdir / "metrics.json").read_text())
  assert [r["epoch"] for r in rows] == list(range(1, done + 1))

  res = _run(args)
  assert res.returncode == 0, res.stderr[-3000:]
  assert f"resuming {workdir} after epoch {done}" in res.stdout
  assert "pruned ffnn" not in res.stdout  # no re-pruning
  metrics = json.loads((workdir / "results.json").read_text())
  assert metrics["resumed_from_epoch"] == done and metrics["epochs_done"] == 6
  assert _sha(workdir / "masks.npz") == masks_sha
  rows = json.loads((workdir / "metrics.json").read_text())
  assert [r["epoch"] for r in rows] == list(range(1, 7))
  # Optimizer state came back: its step counter spans all 6 epochs.
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints" / "ckpt-6"))
  key = [k for k in reader.get_variable_to_shape_map()
         if k.startswith("optimizer/_iterations")][0]
  assert reader.get_tensor(key) == 6 * 20
  assert metrics["weight_sparsity"] >= metrics["sparsity"] - 1e-9
  # (Reruns into a finished or different-config workdir: test_experiment.py.)

