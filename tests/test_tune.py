"""Tests for sbp_tf.tune: a real keras-tuner search whose trials train."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from sbp_tf import config as sbp_config
from sbp_tf import pruning
from sbp_tf import tune


def tiny_config():
  c = sbp_config.experiment("fashion_mnist", "ffnn", depth=3, width=32)
  c.dataset.limit_train, c.dataset.limit_test = 256, 128
  c.train.update(dict(epochs=2, batch_size=64, verbose=0, steps_per_epoch=2))
  c.export_tflite = False
  return c


def test_tune_binary_hyperband_runs_real_trials(shared_data, tmp_path):
  del shared_data
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [os.getcwd()] + env.get("PYTHONPATH", "").split(os.pathsep))
  res = subprocess.run(
      [sys.executable, "-m", "sbp_tf.tune",
       "--config=configs/cpu_fashion_mnist_ffnn.py", f"--workdir={tmp_path}",
       "--config.model.options.width=32", "--config.model.options.depth=3",
       "--config.dataset.limit_train=256", "--config.dataset.limit_test=128",
       "--config.train.epochs=2", "--config.train.steps_per_epoch=2",
       "--config.export_tflite=False", "--config.train.verbose=0",
       "--config.train.validate_each_epoch=False",
       "--tuner=hyperband", "--params=method,sparsity,lr",
       "--methods=sbp,magnitude", "--sparsities=0.5,0.9", "--strategy=default"],
      env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  rows = json.loads((tmp_path / "tune_results.json").read_text())
  assert len(rows) >= 2 and all(r["status"] == "COMPLETED" for r in rows)
  accs = [r["test_accuracy"] for r in rows]
  assert accs == sorted(accs, reverse=True)
  for r in rows:
    assert r["method"] in ("sbp", "magnitude") and r["sparsity"] in (0.5, 0.9)
    assert 1e-3 <= r["lr"] <= 0.3 and 0.0 <= r["test_accuracy"] <= 1.0
    assert r["achieved_sparsity"] == pytest.approx(r["sparsity"], abs=2e-3)
    run = tmp_path / "tuner" / f"trial_{r['trial']}" / "run"
    # Each trial pruned its own model to its own sparsity ...
    masks = pruning.Masks.load(str(run / "masks.npz"))
    assert 1 - masks.density() == pytest.approx(r["sparsity"], abs=2e-3)
    # ... and trained for its Hyperband bracket's epochs.
    assert len(json.loads((run / "metrics.json").read_text())) == r["epochs"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["prune"]["method"] == r["method"]
    assert cfg["train"]["lr"] == pytest.approx(r["lr"])
  md = (tmp_path / "tune_results.md").read_text()
  assert md.startswith("| trial | status |")
  assert md.count("\n") == len(rows) + 2


def test_random_tuner_declares_the_search_space(tmp_path):
  hm = tune.make_hypermodel(tiny_config(), params=("sparsity", "sigma_b"),
                            space={"sparsity": (0.8, 0.9)})
  # pylint: disable=protected-access
  objective = tune._kt().Objective("test_accuracy", "max")
  t = tune._tuner_class("random")(
      hypermodel=hm, max_trials=1, objective=objective,
      directory=str(tmp_path), project_name="p")
  names = {hp.name for hp in t.oracle.hyperparameters.space}
  assert names == {"sparsity", "sigma_b"}
  cfg = hm.build(t.oracle.hyperparameters.copy())
  assert cfg.prune.sparsity == 0.8 and cfg.model.options.sigma_b == 0.0


def test_bayesian_tuner_needs_scikit_learn(tmp_path):
  if importlib.util.find_spec("sklearn") is None:
    with pytest.raises(ValueError, match="needs scikit-learn"):
      tune.search(tiny_config(), tmp_path, tuner="bayesian")
    assert not (tmp_path / "tuner").exists()
  else:
    assert tune._tuner_class("bayesian")  # pylint: disable=protected-access


def test_bad_arguments_name_the_fix(tmp_path):
  with pytest.raises(ValueError, match="unknown tuner 'grid'"):
    tune.search(tiny_config(), tmp_path, tuner="grid")
  with pytest.raises(ValueError,
                     match=r"unknown tuning parameter\(s\) \['depth'\]"):
    tune.make_hypermodel(tiny_config(), params=("depth",))


def test_tune_binary_one_keras3_trial(shared_data, tmp_path):
  # The same trial-per-experiment design with config.framework = keras3.
  del shared_data
  import keras  # pylint: disable=g-import-not-at-top
  from sbp_tf import keras3  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join(
      [os.getcwd()] + env.get("PYTHONPATH", "").split(os.pathsep))
  res = subprocess.run(
      [sys.executable, "-m", "sbp_tf.tune",
       "--config=configs/cpu_fashion_mnist_ffnn.py", f"--workdir={tmp_path}",
       "--config.framework=keras3", "--config.model.options.width=32",
       "--config.model.options.depth=3", "--config.dataset.limit_train=256",
       "--config.dataset.limit_test=128", "--config.train.epochs=1",
       "--config.train.steps_per_epoch=2", "--config.export_tflite=False",
       "--config.train.verbose=0", "--tuner=random", "--max_trials=1",
       "--params=sparsity", "--sparsities=0.9", "--strategy=default"],
      env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  rows = json.loads((tmp_path / "tune_results.json").read_text())
  assert len(rows) == 1 and rows[0]["status"] == "COMPLETED"
  assert rows[0]["sparsity"] == 0.9
  assert rows[0]["achieved_sparsity"] == pytest.approx(0.9, abs=2e-3)
  assert 0.0 <= rows[0]["test_accuracy"] <= 1.0
  run = tmp_path / "tuner" / f"trial_{rows[0]['trial']}" / "run"
  assert json.loads((run / "config.json").read_text())["framework"] == "keras3"
  assert json.loads((run / "results.json").read_text())["framework"] == (
      "keras3")
  model = keras.saving.load_model(str(run / "model.keras"))
  masks = pruning.Masks.load(str(run / "masks.npz"))
  inside = keras3.masks_of(model)
  assert sorted(inside) == sorted(masks)
  assert 1 - inside.density() == pytest.approx(0.9, abs=2e-3)
