"""sbp_tf.export on several inputs/outputs and on integer (token id) inputs.

Every input is fed by name, every output compared (``report['outputs']``);
token-id inputs get ids in ``[0, input_dim)`` and are fed unquantized.
"""

import os
import warnings

import numpy as np
import pytest

from sbp_tf import export, pruning
from sbp_tf.compat import keras, tf


def _two_io(kind="list"):
  keras.utils.set_random_seed(2)
  img, vec = keras.Input((6, 6, 1), name="img"), keras.Input((5,), name="vec")
  h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu",
                                                 name="c1")(img))
  h = keras.layers.Concatenate()([h, keras.layers.Dense(6, name="dv")(vec)])
  h = keras.layers.Dense(32, activation="relu", name="d1")(h)
  cls = keras.layers.Dense(10, name="cls")(h)
  reg = keras.layers.Dense(1, name="reg")(h)
  if kind == "dict":  # keys unlike the layer names, in another order
    return keras.Model({"z_vector": vec, "a_image": img},
                       {"scores": cls, "amount": reg})
  return keras.Model([img, vec], [cls, reg])


def _inputs(n=24):
  rng = np.random.default_rng(3)
  return (rng.normal(size=(n, 6, 6, 1)).astype("float32"),
          rng.normal(size=(n, 5)).astype("float32"))


def _run_file(path, feeds):
  """The written file run by us, one example at a time, by signature."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    interp = tf.lite.Interpreter(model_path=path)
  runner = interp.get_signature_runner()
  n = len(next(iter(feeds.values())))
  outs = [runner(**{k: v[i:i + 1] for k, v in feeds.items()})
          for i in range(n)]
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def test_two_inputs_two_outputs_export_verifies_every_output(tmp_path):
  model = _two_io()
  x = _inputs()
  y = (np.zeros(24, "int64"), np.zeros((24, 1), "float32"))
  pruning.prune(model, "magnitude", 0.8)
  path = str(tmp_path / "m.tflite")
  report = export.to_tflite(model, path, representative_data=(x, y),
                            time_runs=3)
  assert report["verified"], report
  assert set(report["outputs"]) == {"cls", "reg"}
  keras_out = model(list(x), training=False)
  lite = _run_file(path, {"img": x[0], "vec": x[1]})
  for name, want in zip(("cls", "reg"), keras_out):
    got = lite[name]
    err = float(np.abs(got - want.numpy()).max())
    assert err <= 1e-4 * max(1.0, float(np.abs(want).max()))
    # The report's per-output error is this one (same inputs, same file).
    assert report["outputs"][name]["max_abs_diff"] == pytest.approx(
        err, abs=1e-7)
  assert report["max_abs_diff"] == max(
      r["max_abs_diff"] for r in report["outputs"].values())
  assert report["num_sparse_tensors"] >= 2 and report["latency_ms"] > 0
  assert os.path.getsize(path) == report["bytes"]
  assert report["size_ratio"] < 0.6


def test_every_layout_of_several_inputs_is_accepted(tmp_path):
  model = _two_io()
  content = export.convert(model)
  x = _inputs()
  y = (np.zeros(24, "int64"), np.zeros((24, 1), "float32"))
  layouts = {
      "tuple": x, "pair": (x, y), "dict": {"img": x[0], "vec": x[1]},
      "dataset": tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
      "random": None,
  }
  for name, data in layouts.items():
    r = export.verify(content, model, data, on_mismatch="raise")
    assert r["verified"] and r["inputs"].endswith("(24 examples)" if name
                                                  != "random" else
                                                  "(32 examples)"), name
  with pytest.raises(ValueError, match=r"holds 1 input array\(s\) but the "
                     r"model has 2 inputs \['img', 'vec'\]"):
    export.verify(content, model, x[0])
  with pytest.raises(ValueError, match=r"per-example shape \(4,\) for input "
                     "'vec'"):
    export.verify(content, model, (x[0], x[1][:, :4]))


def test_dict_inputs_and_outputs_export(tmp_path):
  model = _two_io("dict")
  x = _inputs()
  data = {"a_image": x[0], "z_vector": x[1]}
  report = export.export_for_run(model, str(tmp_path / "d.tflite"),
                                 representative_data=data)
  assert report["verified"], report
  assert set(report["outputs"]) == {"cls", "reg"}  # the layers' names
  want = model(data, training=False)
  lite = _run_file(report["path"], {"img": x[0], "vec": x[1]})
  np.testing.assert_allclose(lite["cls"], want["scores"], atol=1e-4)
  np.testing.assert_allclose(lite["reg"], want["amount"], atol=1e-4)


def test_int8_calibrates_every_input(tmp_path):
  model = _two_io()
  pruning.prune(model, "magnitude", 0.8)
  x = _inputs(64)
  report = export.to_tflite(model, str(tmp_path / "q.tflite"),
                            quantize="int8", representative_data=x,
                            compare_dense=False, time_runs=0)
  assert report["verified"], report
  for name in ("cls", "reg"):
    assert report["outputs"][name]["rel_diff"] < 0.1, report["outputs"]
  assert report["outputs"]["cls"]["top1_agreement"] >= 0.8


def _embedding_model(sequential=False):
  keras.utils.set_random_seed(7)
  if sequential:  # a float32 input of token ids
    return keras.Sequential([
        keras.Input((12,)), keras.layers.Embedding(50, 8, name="emb"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", name="h"),
        keras.layers.Dense(4, name="out")])
  tok = keras.Input((12,), dtype="int32", name="tokens")
  h = keras.layers.Flatten()(keras.layers.Embedding(50, 8, name="emb")(tok))
  h = keras.layers.Dense(16, activation="relu", name="h")(h)
  return keras.Model(tok, keras.layers.Dense(4, name="out")(h))


@pytest.mark.parametrize("sequential", [False, True])
def test_token_id_inputs_export_without_data(tmp_path, sequential):
  model = _embedding_model(sequential)
  pruning.prune(model, "magnitude", 0.7, scope="layerwise")
  report = export.to_tflite(model, str(tmp_path / "t.tflite"),
                            compare_dense=False, time_runs=2)
  assert report["verified"], report
  assert "token ids in [0, 50)" in report["inputs"]
  assert report["outputs"]["out"]["max_abs_diff"] < 1e-4
  assert report["latency_ms"] > 0
  # Given ids (the edges of the vocabulary included) verify too, and the
  # file's output is Keras's on them.
  ids = np.tile(np.array([0, 49, 1, 48], "int32"), (6, 3))
  r = export.verify(export.convert(model), model, ids, on_mismatch="raise")
  assert r["verified"] and r["outputs"]["out"]["max_abs_diff"] < 1e-4


class _Sub(keras.Model):
  def __init__(self):
    super().__init__()
    self.d = keras.layers.Dense(3, name="d")

  def call(self, x):
    return self.d(x)


def test_subclassed_model_exports_from_its_first_call(tmp_path):
  model = _Sub()
  with pytest.raises(ValueError, match="never been called or built.*model"):
    export.to_tflite(model, str(tmp_path / "s.tflite"), time_runs=0)
  assert not (tmp_path / "s.tflite").exists()
  model(np.ones((2, 5), "float32"))  # records its input: (None, 5) float32
  report = export.to_tflite(model, str(tmp_path / "s.tflite"),
                            compare_dense=False, time_runs=0)
  assert report["verified"] and report["inputs"].startswith("random normal")
  assert report["max_abs_diff"] < 1e-5
