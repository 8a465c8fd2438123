"""Distributed runs of the train binary give the single-device masks.

MirroredStrategy over 2 logical CPU devices, and MultiWorkerMirroredStrategy
with 2 local worker processes (TF_CONFIG on 127.0.0.1), each train a few
steps; the saliency uses the same global batch, so the masks must equal
those of a single-device run.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from sbp_tf import pruning

ARGS = ["--config=configs/cpu_fashion_mnist_ffnn.py",
        "--config.model.options.width=32", "--config.model.options.depth=3",
        "--config.dataset.limit_train=512", "--config.dataset.limit_test=128",
        "--config.train.batch_size=64", "--config.train.epochs=1",
        "--config.train.steps_per_epoch=3", "--config.export_tflite=False",
        "--config.train.verbose=0"]


def _env(**extra):
  env = dict(os.environ, **extra)
  env["PYTHONPATH"] = os.pathsep.join(
      [os.getcwd()] + env.get("PYTHONPATH", "").split(os.pathsep))
  return env


def _cmd(workdir, *flags):
  return [sys.executable, "-m", "sbp_tf.train", f"--workdir={workdir}",
          *ARGS, *flags]


def _masks(workdir):
  return dict(pruning.Masks.load(str(workdir / "masks.npz")))


def _assert_same_masks(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def single(shared_data, tmp_path_factory):
  del shared_data
  workdir = tmp_path_factory.mktemp("single") / "w"
  res = subprocess.run(_cmd(workdir, "--strategy=default"), env=_env(),
                       capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  return workdir


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_mirrored_two_cpu_replicas_same_masks(single, tmp_path):
  workdir = tmp_path / "w"
  res = subprocess.run(
      _cmd(workdir, "--strategy=mirrored", "--num_cpu_devices=2"),
      env=_env(), capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  metrics = json.loads((workdir / "results.json").read_text())
  assert metrics["num_replicas"] == 2 and metrics["global_batch"] == 64
  _assert_same_masks(_masks(workdir), _masks(single))
  assert metrics["weight_sparsity"] >= metrics["sparsity"] - 1e-9


def test_multi_worker_two_processes_same_masks(single, tmp_path):
  workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
  workdir = tmp_path / "w"
  procs = []
  for i in range(2):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": i}})
    procs.append(subprocess.Popen(
        _cmd(workdir, "--strategy=multi_worker"), env=_env(TF_CONFIG=tf_config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  chief = json.loads((workdir / "results.json").read_text())
  other = json.loads((workdir / ".worker1" / "results.json").read_text())
  assert chief["num_replicas"] == 2
  # Synchronous training: both workers end with the same model.
  assert chief["test_accuracy"] == other["test_accuracy"]
  _assert_same_masks(_masks(workdir), _masks(single))
  _assert_same_masks(_masks(workdir / ".worker1"), _masks(single))
