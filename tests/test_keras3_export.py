"""Sparse TFLite export of pruned Keras 3 models, verified against Keras."""

import keras
import numpy as np
import pytest

from sbp_tf import keras3
from sbp_tf import models as k2_models


def test_pruned_model_exports_sparse_and_matches_keras(tmp_path):
  model = keras3.models.build("resnet_cifar", 10, (8, 8, 3), depth=8,
                              stable=True, width_multiplier=0.5, seed=0)
  result = keras3.prune(model, "magnitude", 0.9)
  keras3.mask(model, result.masks)
  x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
  r = keras3.export.to_tflite(model, tmp_path / "m.tflite",
                              representative_data=x, time_runs=2)
  assert r["verified"] and r["max_abs_diff"] <= r["tolerance"] <= 1e-3
  assert r["top1_agreement"] == 1.0
  # Conv/Dense kernels stored sparse: the file is a fraction of the dense one.
  assert r["num_sparse_tensors"] >= 5
  assert r["size_ratio"] < 0.5, r["size_ratio"]
  assert (tmp_path / "m.tflite").stat().st_size == r["bytes"]
  assert r["latency_ms"] > 0


def test_export_refuses_tf_keras_models(tmp_path):
  k2 = k2_models.build("ffnn", 10, (4,), depth=1, width=4)
  with pytest.raises(TypeError, match="tf_keras"):
    keras3.export.to_tflite(k2, tmp_path / "m.tflite")
  m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  with pytest.raises(ValueError, match="quantize"):
    keras3.export.convert(m, quantize="int4")
