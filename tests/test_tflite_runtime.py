"""sbp_tf.tflite_runtime: LiteRT runs the exports, tf.lite without it; and
neither the converter nor the interpreter writes log lines to stderr."""

import numpy as np
import pytest

from sbp_tf import export
from sbp_tf import tflite_runtime
from sbp_tf.compat import keras

import user_testlib


def _tiny_model():
  inp = keras.Input((6,))
  return keras.Model(inp, keras.layers.Dense(3)(inp))


def test_exports_are_verified_by_litert_quietly(capfd):
  pytest.importorskip("ai_edge_litert")
  model = _tiny_model()
  capfd.readouterr()
  content = export.convert(model, sparse=False)
  report = export.verify(content, model, on_mismatch="raise")
  err = capfd.readouterr().err
  assert report["runtime"] == tflite_runtime.NAME == "ai_edge_litert"
  assert report["verified"] and report["max_abs_diff"] < 1e-5
  assert type(tflite_runtime.interpreter(content)).__module__.startswith(
      "ai_edge_litert")
  assert user_testlib.tf_log_lines(err) == [], err
  assert "deprecated" not in err


def test_without_litert_tf_lite_runs_the_same_file(monkeypatch):
  model = _tiny_model()
  content = export.convert(model, sparse=False)
  x = np.random.default_rng(0).normal(size=(1, 6)).astype(np.float32)
  monkeypatch.setattr(tflite_runtime, "_litert", None)
  interp = tflite_runtime.interpreter(content)
  assert type(interp).__module__.startswith("tensorflow")
  interp.set_tensor(interp.get_input_details()[0]["index"], x)
  interp.invoke()
  y = interp.get_tensor(interp.get_output_details()[0]["index"])
  np.testing.assert_allclose(y, model(x).numpy(), atol=1e-5)
  builtin = tflite_runtime.interpreter(content, builtin_only=True)
  assert builtin.get_input_details()[0]["shape"].tolist() == [1, 6]
