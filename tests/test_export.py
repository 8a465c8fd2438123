"""sbp_tf.export.to_tflite: sparse TFLite files that match Keras and shrink."""

import os
import warnings

import numpy as np
import pytest

from sbp_tf.compat import keras, tf
from sbp_tf import export, masking
import sbp_tf.tfmot as sbp_tfmot
from sbp_tf.pruning.targets import prunable_targets


def _model(seed):
  tf.keras.utils.set_random_seed(seed)
  x = keras.Input((8, 8, 1))
  h = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(x)
  h = keras.layers.Flatten()(h)
  h = keras.layers.Dense(96, activation="relu", name="d1")(h)
  y = keras.layers.Dense(10, name="out")(h)
  return keras.Model(x, y)


def _masks(model, sparsity, seed):
  rng = np.random.default_rng(seed)
  masks = {}
  for t in prunable_targets(model):
    m = (rng.random(t.variable.shape) >= sparsity).astype(np.float32)
    m.reshape(-1)[:2] = 1.0
    masks[t.key] = m
  return masks


@pytest.fixture(scope="module")
def inputs():
  return np.random.default_rng(1).standard_normal((16, 8, 8, 1)).astype(
      np.float32)


@pytest.fixture(scope="module")
def float_reports(inputs, tmp_path_factory):
  out = {}
  tmp = tmp_path_factory.mktemp("tflite")
  for sparsity in (0.0, 0.9, 0.98):
    model = _model(seed=3)
    wrap = sbp_tfmot.wrap if sparsity != 0.98 else masking.wrap
    wrapped = wrap(model, _masks(model, sparsity, seed=5))
    path = str(tmp / f"m{sparsity}.tflite")
    out[sparsity] = (export.to_tflite(wrapped, path,
                                      representative_data=(inputs, None)),
                     masking.strip(wrapped))
  return out


def test_float_outputs_match_keras(float_reports, inputs):
  for sparsity, (report, plain) in float_reports.items():
    assert report["verified"], report
    assert report["quantize"] is None
    assert report["max_abs_diff"] <= 1e-4 * max(1.0, np.abs(plain(inputs)).max())
    # Independent check: run the written file ourselves.
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      interp = tf.lite.Interpreter(model_path=report["path"])
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    ys = []
    for i in range(len(inputs)):
      interp.set_tensor(inp["index"], inputs[i:i + 1])
      interp.invoke()
      ys.append(interp.get_tensor(out["index"]).copy())
    np.testing.assert_allclose(np.concatenate(ys), plain(inputs), atol=1e-4)
    assert os.path.getsize(report["path"]) == report["bytes"]
    assert report["latency_ms"] > 0 and report["inputs"].startswith("given")


def test_file_shrinks_with_sparsity(float_reports):
  r0, r90, r98 = (float_reports[s][0] for s in (0.0, 0.9, 0.98))
  assert r0["dense_float_bytes"] == pytest.approx(r90["dense_float_bytes"], rel=0.01)
  assert 0.95 < r0["size_ratio"] <= 1.0   # nothing to compress when dense
  assert r0["num_sparse_tensors"] == 0
  assert r90["size_ratio"] < 0.4          # ~10% of weights plus indices
  assert r98["size_ratio"] < 0.75 * r90["size_ratio"]
  # The two big weight tensors (conv, hidden dense) are stored sparse.
  assert r90["num_sparse_tensors"] >= 2 and r98["num_sparse_tensors"] >= 2


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_sparse_export(quantize, float_reports, inputs, tmp_path):
  model = _model(seed=3)
  wrapped = sbp_tfmot.wrap(model, _masks(model, 0.9, seed=5))
  report = export.to_tflite(wrapped, str(tmp_path / "q.tflite"),
                            quantize=quantize, representative_data=inputs)
  assert report["verified"], report
  assert report["top1_agreement"] >= 0.9
  assert report["rel_diff"] < 0.1
  # int8 weights: smaller than the sparse float file of the same masks.
  assert report["bytes"] < 0.8 * float_reports[0.9][0]["bytes"]
  assert report["num_sparse_tensors"] >= 2
  assert report["resolver"].startswith(("default", "builtin"))
  if report["resolver"].startswith("builtin"):
    assert "XNNPACK" in report["resolver"] and report["resolver_note"]


def test_bad_arguments(tmp_path, inputs):
  model = _model(seed=0)
  with pytest.raises(ValueError, match="quantize='fp16' is not supported"):
    export.to_tflite(model, str(tmp_path / "a.tflite"), quantize="fp16")
  with pytest.raises(ValueError, match="needs|calibrates.*representative_data"):
    export.to_tflite(model, str(tmp_path / "a.tflite"), quantize="int8")
  with pytest.raises(ValueError, match=r"per-example shape \(4, 4, 1\)"):
    export.to_tflite(model, str(tmp_path / "a.tflite"),
                     representative_data=inputs[:, :4, :4])
  assert not os.path.exists(tmp_path / "a.tflite")
