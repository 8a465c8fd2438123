"""Tests for sbp_tf.training (workdir state, reports) and sbp_tf.callbacks."""

import json

import numpy as np
import pytest

from sbp_tf import callbacks as cb_lib
from sbp_tf import config as sbp_config
from sbp_tf.compat import keras, tf
from sbp_tf import pruning
from sbp_tf.training import report as report_lib
from sbp_tf.training import workdir as wd_lib


def test_step_lr_is_the_papers_schedule():
  lrs = [cb_lib.step_lr(e, 0.1, 160) for e in range(160)]
  np.testing.assert_allclose(lrs[:80], 0.1)
  np.testing.assert_allclose(lrs[80:120], 0.01)
  np.testing.assert_allclose(lrs[120:], 0.001)
  assert cb_lib.step_lr(5, 0.2, 10, (0.3,), 0.5) == pytest.approx(0.1)


def test_step_decay_callback_sets_optimizer_lr():
  model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
  model.compile(keras.optimizers.SGD(1.0), "mse")
  seen = []
  record = keras.callbacks.LambdaCallback(
      on_epoch_begin=lambda e, logs: seen.append(
          float(model.optimizer.learning_rate.numpy())))
  hist = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=4, verbose=0,
                   callbacks=[cb_lib.StepDecay(0.1, 4), record])
  np.testing.assert_allclose(seen, [0.1, 0.1, 0.01, 0.001], rtol=1e-6)
  np.testing.assert_allclose(hist.history["lr"], seen, rtol=1e-6)


def test_workdir_refuses_other_experiment_and_foreign_folder(tmp_path):
  cfg = sbp_config.defaults()
  wd = wd_lib.Workdir(tmp_path / "run")
  wd.check_compatible(cfg)  # missing folder: fine
  assert wd.state() == {"status": "new", "epochs_done": 0}
  wd.create(cfg)
  stored = json.loads((tmp_path / "run" / "config.json").read_text())
  assert stored["train"]["lr"] == 0.1
  other = sbp_config.defaults()
  other.prune.sparsity = 0.5
  with pytest.raises(ValueError, match=r"prune\.sparsity: 0\.9 -> 0\.5.*"
                     "--overwrite"):
    wd.check_compatible(other)
  other = sbp_config.defaults()
  other.train.verbose = 2  # progress output may change on resume
  wd.check_compatible(other)
  (tmp_path / "foreign").mkdir()
  (tmp_path / "foreign" / "notes.txt").write_text("x")
  with pytest.raises(ValueError, match="holds no sbp_tf run"):
    wd_lib.Workdir(tmp_path / "foreign").check_compatible(cfg)


def test_epoch_checkpoint_writes_ckpt_then_metrics_then_state(tmp_path):
  wd = wd_lib.Workdir(tmp_path)
  wd.create(sbp_config.defaults())
  model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
  model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
  ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
  manager = tf.train.CheckpointManager(ckpt, str(wd.ckpt_dir), max_to_keep=5)
  cb = cb_lib.EpochCheckpoint(wd, manager, 3, [model.layers[0].kernel])
  # A stale row from an interrupted epoch 2 must be replaced, not duplicated.
  wd.write_metrics([{"epoch": 1, "loss": 9.0}, {"epoch": 2, "loss": 9.0}])
  x, y = np.ones((8, 3)), np.zeros((8, 2))
  model.fit(x, y, epochs=3, initial_epoch=1, verbose=0, callbacks=[cb])
  rows = wd.metrics()
  assert [r["epoch"] for r in rows] == [1, 2, 3]
  assert rows[0]["loss"] == 9.0 and rows[1]["loss"] != 9.0
  assert wd.state()["epochs_done"] == 3
  assert manager.latest_checkpoint.endswith("ckpt-3")
  header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
  assert header[0] == "epoch" and "weight_sparsity" in header
  # The checkpoint holds the optimizer's step count: 2 epochs of 1 step.
  reader = tf.train.load_checkpoint(manager.latest_checkpoint)
  iters = [k for k in reader.get_variable_to_shape_map()
           if k.startswith("optimizer/_iterations")]
  assert reader.get_tensor(iters[0]) == 2


def test_layer_report_counts_and_files(tmp_path):
  masks = {"a/kernel": np.array([[1, 0], [0, 0]], np.float32),
           "b/kernel": np.zeros((3,), np.float32)}
  summary = report_lib.write_reports(masks, tmp_path, "r")
  assert summary["density"] == pytest.approx(1 / 7)
  assert summary["collapsed"] == ["b/kernel"]
  assert [r["density"] for r in summary["layers"]] == [0.25, 0.0]
  # One schema: the workdir's report is prune()'s report.
  assert summary == pruning.Masks(masks).report().summary()
  md = (tmp_path / "r.md").read_text()
  assert "| a/kernel | 2x2 | 4 | 1 | 0.2500 |" in md
  assert "| b/kernel (collapsed) | 3 | 3 | 0 | 0.0000 |" in md
  assert "| **total** | | 7 | 1 | 0.1429 |" in md
  assert (tmp_path / "r.png").stat().st_size > 1000
  assert json.loads((tmp_path / "r.json").read_text())["total_kept"] == 1
