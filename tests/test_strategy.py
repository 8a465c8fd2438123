"""Tests for sbp_tf.strategy: selection, errors, dtype policies."""

import json

import pytest

from sbp_tf import strategy as sbp_strategy
from sbp_tf.compat import keras, tf


def test_default_and_auto_on_a_cpu_machine_are_single_replica():
  for name in ("default", "auto"):
    s = sbp_strategy.get(name)
    assert s.num_replicas_in_sync == 1
    assert sbp_strategy.task_info(s) == (True, 0)


def test_mirrored_without_gpu_falls_back_to_cpu():
  s = sbp_strategy.get("mirrored")
  assert isinstance(s, tf.distribute.MirroredStrategy)
  assert all("CPU" in d for d in s.extended.worker_devices)


def test_errors_name_the_fix(monkeypatch):
  with pytest.raises(ValueError, match="unknown strategy 'gpu'.*auto"):
    sbp_strategy.get("gpu")
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="needs the TF_CONFIG"):
    sbp_strategy.get("multi_worker")
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
    sbp_strategy.get("multi_worker")
  monkeypatch.delenv("TPU_NAME", raising=False)
  with pytest.raises(ValueError, match=r"no TPU reachable.*--tpu="):
    sbp_strategy.get("tpu")


def test_num_workers_counts_chief_and_workers(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps(
      {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]},
       "task": {"type": "worker", "index": 0}}))
  assert sbp_strategy._num_workers() == 3  # pylint: disable=protected-access


def test_precision_policy_sets_and_restores():
  assert sbp_strategy.policy_name(None) == "float32"
  assert sbp_strategy.policy_name("float16") == "mixed_float16"
  assert sbp_strategy.policy_name("bfloat16") == "mixed_bfloat16"
  before = keras.mixed_precision.global_policy().name
  with sbp_strategy.precision_policy("bfloat16"):
    layer = keras.layers.Dense(2)
    y = layer(tf.ones((1, 3)))
    assert y.dtype == tf.bfloat16 and layer.kernel.dtype == tf.float32
  assert keras.mixed_precision.global_policy().name == before
  with pytest.raises(ValueError, match="mixed_precision='int8'"):
    sbp_strategy.policy_name("int8")
