"""End-to-end tests of sbp_tf.experiment.run on real Fashion-MNIST (tiny)."""

import json

import numpy as np
import pytest

from sbp_tf import callbacks as cb_lib
from sbp_tf import config as sbp_config
from sbp_tf import experiment
from sbp_tf.compat import keras, tf

from experiment_testlib import sparsity_events, tiny_config


@pytest.fixture(scope="module")
def finished(shared_data, tmp_path_factory):
  del shared_data  # the data helper finds the offline copy itself
  cfg = tiny_config()
  cfg.export_tflite = True
  workdir = tmp_path_factory.mktemp("exp") / "run"
  return cfg, workdir, experiment.run(cfg, workdir)


def test_run_writes_the_documented_workdir(finished):
  _, workdir, metrics = finished
  for name in ["config.json", "config_ml.json", "masks.npz", "state.json",
               "prune_report.json", "prune_report.md", "prune_report.png",
               "metrics.csv", "metrics.json", "results.json",
               "checkpoints/init.index", "checkpoints/ckpt-2.index",
               "model_wrapped.keras", "model.keras", "model.tflite"]:
    assert (workdir / name).exists(), name
  state = json.loads((workdir / "state.json").read_text())
  assert state["status"] == "finished"
  stored = json.loads((workdir / "results.json").read_text())
  # pytest.approx takes no nested dicts: compare at_init on its own.
  assert stored.pop("at_init") == metrics["at_init"]
  assert stored == pytest.approx(
      {k: v for k, v in metrics.items() if k != "at_init"})
  rows = json.loads((workdir / "metrics.json").read_text())
  assert [r["epoch"] for r in rows] == [1, 2]
  np.testing.assert_allclose([r["lr"] for r in rows],
                             [cb_lib.step_lr(e, 0.05, 2) for e in range(2)],
                             rtol=1e-6)


def test_run_prunes_keeps_masks_and_learns(finished):
  cfg, workdir, metrics = finished
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  from sbp_tf import tfmot as sbp_tfmot  # pylint: disable=g-import-not-at-top
  from sbp_tf.pruning import targets  # pylint: disable=g-import-not-at-top
  masks = pruning.Masks.load(str(workdir / "masks.npz"))
  assert metrics["sparsity"] == pytest.approx(0.8, abs=2e-3)
  assert metrics["sparsity"] == pytest.approx(1 - masks.density())
  # Pruned weights are still exactly zero after training.
  assert metrics["weight_sparsity"] >= metrics["sparsity"] - 1e-9
  assert metrics["epochs_done"] == 2 and metrics["resumed_from_epoch"] == 0
  # 2 epochs on 512 images: well above the 10% of chance.
  assert metrics["test_accuracy"] > 0.4
  stripped = sbp_tfmot.load_model(str(workdir / "model.keras"))
  for t in targets.prunable_targets(stripped):
    assert not np.any(t.variable.numpy()[masks[t.key] == 0]), t.key
  from sbp_tf import data  # pylint: disable=g-import-not-at-top
  test, _ = data.load("fashion_mnist", "test", batch_size=64, limit=256)
  stripped.compile(metrics=["accuracy"],
                   loss=experiment.loss_fn())
  _, acc = stripped.evaluate(test, verbose=0)
  assert acc == pytest.approx(metrics["test_accuracy"], abs=1e-6)
  del cfg


def test_tensorboard_holds_global_and_per_layer_sparsity_per_epoch(finished):
  _, workdir, metrics = finished
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  masks = pruning.Masks.load(str(workdir / "masks.npz"))
  events = sparsity_events(workdir)
  assert sorted(events) == sorted(
      ["sparsity/global"] + [f"sparsity_by_layer/{k}" for k in masks])
  rows = json.loads((workdir / "metrics.json").read_text())
  assert [s for s, _ in events["sparsity/global"]] == [0, 1]  # per epoch
  np.testing.assert_allclose([v for _, v in events["sparsity/global"]],
                             [r["weight_sparsity"] for r in rows], rtol=1e-6)
  for key, m in masks.items():  # pruned weights stay zero: >= mask sparsity
    for _, v in events[f"sparsity_by_layer/{key}"]:
      assert 1 - m.mean() <= v < 1 - m.mean() + 0.01, key
  assert events["sparsity/global"][-1][1] == pytest.approx(
      metrics["weight_sparsity"])


def test_rerun_finished_returns_stored_and_mismatch_raises(finished, capsys):
  cfg, workdir, metrics = finished
  mtime = (workdir / "state.json").stat().st_mtime_ns
  again = experiment.run(cfg, workdir)
  assert again["already_finished"] and again["test_accuracy"] == metrics[
      "test_accuracy"]
  assert "already holds a finished run" in capsys.readouterr().out
  other = tiny_config()
  other.export_tflite = True
  other.prune.sparsity = 0.5
  with pytest.raises(ValueError, match=r"prune\.sparsity: 0\.8 -> 0\.5"):
    experiment.run(other, workdir)
  assert (workdir / "state.json").stat().st_mtime_ns == mtime


def test_invalid_config_fails_before_workdir_exists(tmp_path):
  cfg = tiny_config()
  cfg.prune.method = "snap"
  with pytest.raises(ValueError, match=r"prune\.method='snap'"):
    experiment.run(cfg, tmp_path / "never")
  assert not (tmp_path / "never").exists()


def test_overwrite_and_mixed_precision_run(shared_data, tmp_path):
  del shared_data
  cfg = tiny_config(epochs=1, steps_per_epoch=2, mixed_precision="bfloat16")
  (tmp_path / "run").mkdir()
  first = experiment.run(cfg, tmp_path / "run")
  second = experiment.run(cfg, tmp_path / "run", overwrite=True)
  assert "already_finished" not in second
  # Same seed, same data: the masks are re-derived identically.
  assert second["sparsity"] == first["sparsity"]
  assert 0 <= second["test_accuracy"] <= 1
  assert keras.mixed_precision.global_policy().name == "float32"


def test_add_l2_is_half_wd_times_squared_kernel_norm():
  model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,)),
                            keras.layers.Dense(2)])
  experiment.add_l2(model, 1e-2)
  want = 0.5 * 1e-2 * sum(np.sum(l.kernel.numpy() ** 2) for l in model.layers)
  assert float(tf.add_n(model.losses)) == pytest.approx(want, rel=1e-5)
