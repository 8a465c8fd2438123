"""Pruning and TFLite export of models built under a mixed-precision policy.

Such a model keeps float32 variables but computes in float16/bfloat16;
scores are computed on a float32 copy (``sbp_tf.pruning.precision``), so it
gets the float32 model's masks for the same weights, on both Keras paths.
Before, GraSP's ``H g`` underflowed in float16: whole conv kernels scored
exactly 0 and their masks were arbitrary. TFLite converts the float32 copy.
"""

import warnings

import numpy as np
import pytest

from sbp_tf import export, pruning
from sbp_tf.compat import keras, tf

METHODS = ["sbp", "grasp", "synflow", "magnitude", "random"]


def _cnn(k, policy):
  """Six tanh convs, pooled, a Dense head; layers under ``policy``."""
  k.mixed_precision.set_global_policy(policy)
  try:
    k.utils.set_random_seed(0)
    x = k.Input((16, 16, 3))
    h = x
    for i in range(6):
      h = k.layers.Conv2D(16, 3, padding="same", activation="tanh",
                          name=f"c{i}")(h)
    h = k.layers.GlobalAveragePooling2D()(h)
    return k.Model(x, k.layers.Dense(10, name="head")(h))
  finally:
    k.mixed_precision.set_global_policy("float32")


def _pair(k, policy="mixed_float16"):
  ref, mixed = _cnn(k, "float32"), _cnn(k, policy)
  mixed.set_weights(ref.get_weights())
  assert mixed.get_layer("c0").compute_dtype == policy.split("_")[1]
  return ref, mixed


def _data():
  rng = np.random.default_rng(0)
  return (rng.normal(size=(16, 16, 16, 3)).astype("float32"),
          np.arange(16) % 10)


def _compare(prune, ref, mixed, methods):
  data = _data()
  for method in methods:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # collapse warnings at 90%
      a = prune(ref, method, 0.9, data=data, seed=0, rounds=1)
      b = prune(mixed, method, 0.9, data=data, seed=0, rounds=1)
    for key in a.scores:
      assert np.any(b.scores[key]), (method, key)  # no all-zero layer
      np.testing.assert_allclose(b.scores[key], a.scores[key], rtol=1e-6,
                                 atol=0, err_msg=f"{method} {key}")
      np.testing.assert_array_equal(b.masks[key], a.masks[key],
                                    err_msg=f"{method} {key}")


def test_tf_keras_mixed_float16_gets_the_float32_masks():
  ref, mixed = _pair(keras)
  _compare(pruning.prune, ref, mixed, METHODS)
  # SynFlow's float32 path (no float64 clone) runs on the float32 copy too
  # (in float16 its scores were off by ~100%).
  a = pruning.score(ref, "synflow", precision="float32")
  b = pruning.score(mixed, "synflow", precision="float32")
  for key in a:
    np.testing.assert_allclose(b[key], a[key], rtol=1e-6, err_msg=key)


def test_tf_keras_mixed_bfloat16_grasp_gets_the_float32_masks():
  ref, mixed = _pair(keras, "mixed_bfloat16")
  _compare(pruning.prune, ref, mixed, ["grasp", "sbp"])


def test_keras3_mixed_float16_gets_the_float32_masks():
  import keras as k3  # pylint: disable=g-import-not-at-top
  from sbp_tf import keras3  # pylint: disable=g-import-not-at-top
  ref, mixed = _pair(k3)
  _compare(keras3.prune, ref, mixed, ["sbp", "grasp"])


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tf_keras_mixed_float16_exports_to_tflite(tmp_path):
  _, mixed = _pair(keras)
  pruning.prune(mixed, "magnitude", 0.8)
  x, _ = _data()
  r = export.to_tflite(mixed, str(tmp_path / "m.tflite"),
                       representative_data=x, compare_dense=False,
                       time_runs=0)
  assert r["verified"] and r["max_abs_diff"] < 1e-4, r
  assert r["num_sparse_tensors"] > 0
  # The file computes the float32 network: the mixed model agrees to fp16.
  interp = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite"))
  interp.allocate_tensors()
  inp, out = (interp.get_input_details()[0]["index"],
              interp.get_output_details()[0]["index"])
  interp.set_tensor(inp, x[:1])
  interp.invoke()
  np.testing.assert_allclose(interp.get_tensor(out),
                             mixed(x[:1]).numpy().astype("float32"),
                             atol=5e-3)


def test_keras3_mixed_float16_exports_to_tflite(tmp_path):
  import keras as k3  # pylint: disable=g-import-not-at-top
  from sbp_tf import keras3  # pylint: disable=g-import-not-at-top
  _, mixed = _pair(k3)
  keras3.prune(mixed, "magnitude", 0.8)
  x, _ = _data()
  r = keras3.export.to_tflite(mixed, str(tmp_path / "m.tflite"),
                              representative_data=x, compare_dense=False,
                              time_runs=0)
  assert r["verified"] and r["max_abs_diff"] < 1e-4, r


class _Sub(keras.Model):
  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.d = keras.layers.Dense(3, name="d")

  def call(self, x):
    return self.d(x)


def test_mixed_subclassed_model_export_says_how_in_one_line(tmp_path):
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    model = _Sub(name="sub")
    model(tf.ones((1, 4)))
  finally:
    keras.mixed_precision.set_global_policy("float32")
  with pytest.raises(ValueError, match=r"^to_tflite: model 'sub' computes in "
                     r"float16/bfloat16 \(mixed precision\) and cannot be "
                     r"rebuilt in float32.*Fix: build the same model under "
                     r"keras\.mixed_precision\.set_global_policy\('float32'\)"
                     ) as e:
    export.to_tflite(model, str(tmp_path / "s.tflite"), time_runs=0)
  assert "\n" not in str(e.value)
  assert not (tmp_path / "s.tflite").exists()
  # Scoring it runs in float16, said once, with the same fix.
  with pytest.warns(UserWarning, match=r"saliency of model 'sub' runs in its "
                    r"mixed-precision compute dtype.*Fix: build the model "
                    r"under keras\.mixed_precision"):
    pruning.score(model, "sbp", data=(np.ones((4, 4), "float32"),
                                      np.arange(4) % 3))
