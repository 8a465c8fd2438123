"""experiment.run with config.framework = "keras3" (the Keras 3 phases) on
real Fashion-MNIST (tiny): workdir, masks, resume, binary, config field."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from sbp_tf import callbacks as cb_lib
from sbp_tf import config as sbp_config
from sbp_tf import experiment
from sbp_tf import keras3
from sbp_tf import pruning
from sbp_tf.compat import tf
from sbp_tf.training import workdir as wd_lib

from experiment_testlib import sparsity_events, tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def k3_config(**train):
  c = tiny_config(**train)
  c.framework = "keras3"
  return c


@pytest.fixture(scope="module")
def finished(shared_data, tmp_path_factory):
  del shared_data
  cfg = k3_config()
  cfg.export_tflite = True
  workdir = tmp_path_factory.mktemp("k3") / "run"
  return cfg, workdir, experiment.run(cfg, workdir)


def test_keras3_run_writes_the_documented_workdir(finished):
  cfg, workdir, metrics = finished
  for name in ["config.json", "config_ml.json", "masks.npz", "state.json",
               "prune_report.json", "prune_report.md",
               "prune_diagnostics.json", "metrics.csv", "metrics.json",
               "results.json", "checkpoints/init.index",
               "checkpoints/ckpt-2.index", "model.keras", "model.tflite"]:
    assert (workdir / name).exists(), name
  assert not (workdir / "model_wrapped.keras").exists()  # no wrappers
  assert json.loads((workdir / "state.json").read_text())["status"] == (
      "finished")
  assert json.loads((workdir / "config.json").read_text())["framework"] == (
      "keras3")
  stored = json.loads((workdir / "results.json").read_text())
  assert stored.pop("at_init") == metrics["at_init"]
  assert stored == pytest.approx(
      {k: v for k, v in metrics.items() if k != "at_init"})
  assert metrics["framework"] == "keras3"
  assert metrics["at_init"]["kept_weights"] == round(
      0.2 * metrics["at_init"]["total_weights"])
  rows = json.loads((workdir / "metrics.json").read_text())
  assert [r["epoch"] for r in rows] == [1, 2]
  np.testing.assert_allclose([r["lr"] for r in rows],
                             [cb_lib.step_lr(e, 0.05, 2) for e in range(2)],
                             rtol=1e-6)
  assert {"loss", "accuracy", "xent", "val_accuracy", "weight_sparsity",
          "epoch_time_s"} <= set(rows[-1])
  # test_objective = xent + wd/2 * sum ||W||^2 > xent (l2 decay is on).
  assert metrics["test_objective"] > metrics["test_loss"]
  assert metrics["tflite_verified"] and metrics["tflite_bytes"] > 0
  # TensorBoard: the same per-epoch sparsity as the tf_keras path.
  events = sparsity_events(workdir)
  masks = pruning.Masks.load(str(workdir / "masks.npz"))
  assert sorted(events) == sorted(
      ["sparsity/global"] + [f"sparsity_by_layer/{k}" for k in masks])
  np.testing.assert_allclose([v for _, v in events["sparsity/global"]],
                             [r["weight_sparsity"] for r in rows], rtol=1e-6)
  del cfg


def test_keras3_run_prunes_keeps_masks_and_learns(finished):
  _, workdir, metrics = finished
  masks = pruning.Masks.load(str(workdir / "masks.npz"))
  assert metrics["sparsity"] == pytest.approx(0.8, abs=2e-3)
  assert metrics["sparsity"] == pytest.approx(1 - masks.density())
  assert metrics["weight_sparsity"] >= metrics["sparsity"] - 1e-9
  assert metrics["epochs_done"] == 2 and metrics["resumed_from_epoch"] == 0
  assert metrics["test_accuracy"] > 0.4  # chance is 0.1
  model = keras.saving.load_model(str(workdir / "model.keras"))
  assert isinstance(model, keras.Model)  # Keras 3, masks inside
  inside = keras3.masks_of(model)
  assert sorted(inside) == sorted(masks)
  for t in keras3.prunable_targets(model):
    np.testing.assert_array_equal(inside[t.key], masks[t.key])
    assert not np.any(t.variable.numpy()[masks[t.key] == 0]), t.key
  from sbp_tf import data  # pylint: disable=g-import-not-at-top
  test, _ = data.load("fashion_mnist", "test", batch_size=64, limit=256)
  ev = model.evaluate(test, verbose=0, return_dict=True)
  assert ev["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_keras3_rerun_returns_stored_and_framework_change_raises(finished):
  cfg, workdir, metrics = finished
  again = experiment.run(cfg, workdir)
  assert again["already_finished"]
  assert again["test_accuracy"] == metrics["test_accuracy"]
  other = sbp_config.resolve(cfg)
  other.framework = "tf_keras"
  with pytest.raises(wd_lib.WorkdirError,
                     match=r"framework: 'keras3' -> '<missing>'"):
    experiment.run(other, workdir)


class _Interrupted(Exception):
  pass


def _checkpoint(workdir, epoch):
  reader = tf.train.load_checkpoint(str(workdir / "checkpoints" /
                                        f"ckpt-{epoch}"))
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if k.startswith(("model/", "optimizer/"))}


def test_keras3_kill_and_resume_reproduces_the_uninterrupted_run(
    shared_data, tmp_path, monkeypatch):
  # Momentum SGD, augmentation, epochs straddling passes (5 of 7 batches):
  # killed right after epoch 1's checkpoint, then rerun.
  del shared_data
  cfg = k3_config(epochs=2, steps_per_epoch=5)
  cfg.dataset.augment, cfg.dataset.limit_train = True, 448
  full = experiment.run(cfg, tmp_path / "full")
  original = cb_lib.EpochCheckpointLogic.on_epoch_end

  def stop_after_epoch_1(self, epoch, logs=None):
    original(self, epoch, logs)
    if epoch + 1 == 1:
      raise _Interrupted()

  monkeypatch.setattr(cb_lib.EpochCheckpointLogic, "on_epoch_end",
                      stop_after_epoch_1)
  with pytest.raises(_Interrupted):
    experiment.run(cfg, tmp_path / "resumed")
  monkeypatch.setattr(cb_lib.EpochCheckpointLogic, "on_epoch_end", original)
  assert wd_lib.Workdir(tmp_path / "resumed").state()["epochs_done"] == 1
  resumed = experiment.run(cfg, tmp_path / "resumed")
  assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_done"] == 2
  a = pruning.Masks.load(str(tmp_path / "full" / "masks.npz"))
  b = pruning.Masks.load(str(tmp_path / "resumed" / "masks.npz"))
  assert all(np.array_equal(a[k], b[k]) for k in a)
  want, got = _checkpoint(tmp_path / "full", 2), _checkpoint(
      tmp_path / "resumed", 2)
  # Weights, momentum slots and the step counter: bit for bit.
  assert sorted(want) == sorted(got)
  assert sum(k.startswith("optimizer/") for k in want) >= 4
  for k in want:
    assert np.array_equal(want[k], got[k]), k
  assert resumed["test_accuracy"] == full["test_accuracy"]


def test_keras3_refuses_a_multi_replica_strategy_before_writing(tmp_path):
  class TwoReplicas:
    num_replicas_in_sync = 2

  with pytest.raises(ValueError, match=r"one device.*--strategy=default"):
    experiment.run(k3_config(), tmp_path / "run", strategy=TwoReplicas())
  assert not (tmp_path / "run").exists()


def test_framework_field_is_validated_and_invisible_when_default():
  c = sbp_config.defaults()
  assert c.framework == "tf_keras"
  # Stored configs written before the field existed stay identical.
  assert "framework" not in sbp_config.to_dict(c)
  old = sbp_config.to_dict(c)
  assert sbp_config.diff(old, c) == []
  c.framework = "keras3"
  assert sbp_config.to_dict(c)["framework"] == "keras3"
  assert sbp_config.diff(old, c) == ["framework"]
  c.framework = "keras4"
  with pytest.raises(ValueError, match=r"framework='keras4' must be one of"):
    sbp_config.validate(c)
  c.framework, c.train.mixed_precision = "keras3", "float16"
  with pytest.raises(ValueError, match=r"mixed_precision='float16' is not "
                     r"supported with framework='keras3'.*Fix"):
    sbp_config.validate(c)


def test_train_binary_with_framework_keras3(shared_data, tmp_path):
  del shared_data
  cfg_file = tmp_path / "tiny.py"
  cfg_file.write_text(
      "import sys\nsys.path.insert(0, %r)\n"
      "from experiment_testlib import tiny_config\n"
      "def get_config():\n  return tiny_config(epochs=1)\n"
      % os.path.join(REPO, "tests"))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  res = subprocess.run(
      [sys.executable, "-m", "sbp_tf.train", f"--config={cfg_file}",
       f"--workdir={tmp_path / 'run'}", "--config.framework=keras3",
       "--strategy=default", "--verbose=0"],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  out = json.loads(res.stdout[res.stdout.index("{\n"):])
  assert out["framework"] == "keras3" and out["epochs_done"] == 1
  assert out["sparsity"] == pytest.approx(0.8, abs=2e-3)
  assert (tmp_path / "run" / "model.keras").exists()
