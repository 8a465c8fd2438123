"""Every client family, both Keras paths, all five methods, the full workflow.

For each family (functional CNN, two inputs and two outputs, Embedding+LSTM,
Embedding+Bidirectional(LSTM)+Conv1D, a ViT with a custom position-embedding
layer that owns its weight, a transformer with MultiHeadAttention, a
mixed_float16 CNN, a regression head, a multi-label head) the tf_keras model
is built once and its weights are copied into the same architecture built
with Keras 3. Then:

* every method prunes both at 80% with the same data: the same keys, the
  exact kept count, identical masks for magnitude, random and SynFlow
  (float64 on both paths), and for SBP/GraSP the kept sets of float32
  gradients computed by two Kerases' kernels overlap (>= 97%);
* with the SBP masks, each path's own way of keeping masks (tfmot wrappers
  on tf_keras, constraints on Keras 3) holds exact zeros through ``fit``,
  the model is saved, stripped, and its TFLite export verifies;
* a fresh process loads every saved file and finds the zeros still there.
"""

import json
import os
import subprocess
import sys
import warnings

import keras as keras3_module
import numpy as np
import pytest

from sbp_tf import export, keras3, pruning
from sbp_tf.compat import keras as keras2_module
import sbp_tf.tfmot as sbp_tfmot
from paths_testlib import pos_embedding

METHODS = ["sbp", "magnitude", "random", "grasp", "synflow"]
EXACT = ("magnitude", "random", "synflow")
SEQ, VOCAB = 6, 40


def cnn(K):
  L = K.layers
  x = K.Input((8, 8, 3))
  h = L.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(x)
  h = L.ReLU()(L.BatchNormalization(name="bn1")(h))
  h = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(h)
  h = L.GlobalAveragePooling2D()(h)
  return K.Model(x, L.Dense(5, name="head")(h))


def mixed_cnn(K):
  K.mixed_precision.set_global_policy("mixed_float16")
  try:
    L = K.layers
    x = K.Input((8, 8, 3))
    h = L.Conv2D(8, 3, activation="tanh", name="c1")(x)
    h = L.Conv2D(8, 3, activation="tanh", name="c2")(h)
    h = L.GlobalAveragePooling2D()(h)
    out = L.Activation("linear", dtype="float32")(L.Dense(5, name="head")(h))
    return K.Model(x, out)
  finally:
    K.mixed_precision.set_global_policy("float32")


def two_io(K):
  L = K.layers
  img, vec = K.Input((6, 6, 2), name="img"), K.Input((5,), name="vec")
  h = L.Concatenate()([L.Flatten()(L.Conv2D(4, 3, name="conv")(img)),
                       L.Dense(6, name="vdense")(vec)])
  h = L.Dense(8, activation="relu", name="d1")(h)
  return K.Model([img, vec], [L.Dense(5, name="cls")(h),
                              L.Dense(1, name="reg")(h)])


def emb_lstm(K):
  L = K.layers
  x = K.Input((SEQ,), dtype="int32")
  h = L.LSTM(8, name="lstm")(L.Embedding(VOCAB, 8, name="emb")(x))
  return K.Model(x, L.Dense(5, name="head")(h))


def emb_bilstm_conv1d(K):
  L = K.layers
  x = K.Input((SEQ,), dtype="int32")
  h = L.Embedding(VOCAB, 8, name="emb")(x)
  h = L.Bidirectional(L.LSTM(4, return_sequences=True), name="bi")(h)
  h = L.Conv1D(6, 3, activation="relu", name="conv")(h)
  h = L.GlobalAveragePooling1D()(h)
  return K.Model(x, L.Dense(5, name="head")(h))


def vit(K):
  L = K.layers
  x = K.Input((8, 8, 3))
  h = L.Reshape((4, 16))(L.Conv2D(16, 4, strides=4, name="patch")(x))
  h = pos_embedding(K)(name="pos")(h)
  a = L.MultiHeadAttention(2, 8, name="mha")(h, h)
  h = L.LayerNormalization(name="ln")(h + a)
  h = L.GlobalAveragePooling1D()(h)
  return K.Model(x, L.Dense(5, name="head")(h))


def transformer(K):
  L = K.layers
  x = K.Input((SEQ,), dtype="int32")
  h = L.Embedding(VOCAB, 16, name="emb")(x)
  a = L.MultiHeadAttention(2, 8, name="mha")(h, h)
  h = L.LayerNormalization(name="ln1")(h + a)
  f = L.Dense(16, name="ff2")(L.Dense(32, activation="gelu", name="ff1")(h))
  h = L.LayerNormalization(name="ln2")(h + f)
  return K.Model(x, L.Dense(5, name="head")(L.GlobalAveragePooling1D()(h)))


def regression(K):
  L = K.layers
  x = K.Input((10,))
  h = L.Dense(16, activation="relu", name="d1")(x)
  return K.Model(x, L.Dense(1, name="out")(h))


def multilabel(K):
  L = K.layers
  x = K.Input((10,))
  h = L.Dense(16, activation="relu", name="d1")(x)
  return K.Model(x, L.Dense(4, name="out")(h))  # logits of 4 labels


FAMILIES = {f.__name__: f for f in (cnn, mixed_cnn, two_io, emb_lstm,
                                    emb_bilstm_conv1d, vit, transformer,
                                    regression, multilabel)}


def _data(name, n=8):
  rng = np.random.default_rng(0)
  if name == "two_io":
    x = (rng.normal(size=(n, 6, 6, 2)).astype("float32"),
         rng.normal(size=(n, 5)).astype("float32"))
    return x, (rng.integers(0, 5, n), rng.normal(size=(n, 1)).astype(
        "float32"))
  if name in ("emb_lstm", "emb_bilstm_conv1d", "transformer"):
    return rng.integers(0, VOCAB, (n, SEQ)).astype("int32"), rng.integers(
        0, 5, n)
  if name in ("regression", "multilabel"):
    x = rng.normal(size=(n, 10)).astype("float32")
    y = (rng.normal(size=(n, 1)) if name == "regression"
         else rng.integers(0, 2, (n, 4))).astype("float32")
    return x, y
  return rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.integers(0, 5, n)


def _loss(name, K):
  if name == "two_io":
    return {"cls": K.losses.SparseCategoricalCrossentropy(from_logits=True),
            "reg": "mse"}
  if name == "regression":
    return "mse"
  if name == "multilabel":
    return K.losses.BinaryCrossentropy(from_logits=True)
  return None  # the default (sparse CE on logits)


def _fit_loss(name, K):
  return _loss(name, K) or K.losses.SparseCategoricalCrossentropy(
      from_logits=True)


def _pair(name):
  keras2_module.utils.set_random_seed(0)
  k2 = FAMILIES[name](keras2_module)
  k3 = FAMILIES[name](keras3_module)
  for layer in k2.layers:
    if layer.weights:
      k3.get_layer(layer.name).set_weights(layer.get_weights())
  return k2, k3


def _prune(path, model, name, method):
  fn = keras3.prune if path == "keras3" else pruning.prune
  K = keras3_module if path == "keras3" else keras2_module
  x, y = _data(name)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # collapse / unpruned-layer notes
    return fn(model, method, 0.8, data=(x, y), loss=_loss(name, K), seed=0,
              rounds=3 if method == "synflow" else None, on_collapse="ignore")


def _overlap(a, b) -> float:
  ka = np.concatenate([a[k].ravel() for k in a]) > 0
  kb = np.concatenate([b[k].ravel() for k in a]) > 0
  return float(np.sum(ka & kb) / max(np.sum(ka), 1))


def _zeros_hold(targets, masks) -> bool:
  return all(not np.any(t.variable.numpy()[np.asarray(masks[t.key]) == 0])
             for t in targets if t.key in masks)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """Files saved by the workflows, for the fresh-process check at the end."""
  return {"dir": tmp_path_factory.mktemp("families"), "files": []}


def _workflow_tf_keras(name, model, masks, out):
  x, y = _data(name)
  # (mixed_cnn is wrapped after the global policy went back to float32:
  # the wrappers take their layers' policy.)
  wrapped = sbp_tfmot.wrap(model, masks)
  wrapped.compile(keras2_module.optimizers.Adam(0.05),
                  _fit_loss(name, keras2_module))
  wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=sbp_tfmot.callbacks())
  final = sbp_tfmot.strip(wrapped)
  assert _zeros_hold(pruning.prunable_targets(final), masks)
  path = str(out / f"{name}_tf_keras.keras")
  final.save(path)
  return final, path


def _workflow_keras3(name, model, masks, out):
  x, y = _data(name)
  keras3.mask(model, masks)
  model.compile(keras3_module.optimizers.Adam(0.05),
                _fit_loss(name, keras3_module))
  model.fit(x, y, batch_size=4, epochs=1, verbose=0)
  assert _zeros_hold(keras3.prunable_targets(model), masks)
  path = str(out / f"{name}_keras3.keras")
  model.save(path)  # the masks travel inside, as constraints
  return model, path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_on_both_paths(name, saved):
  results = {}
  for method in METHODS:
    k2, k3 = _pair(name)
    r2, r3 = _prune("tf_keras", k2, name, method), _prune("keras3", k3, name,
                                                           method)
    n = sum(int(np.prod(t.variable.shape))
            for t in pruning.prunable_targets(k2))
    assert list(r3.masks) == list(r2.masks), method
    assert r2.masks.kept() == r3.masks.kept() == round(0.2 * n), method
    if method in EXACT:
      for k in r2.masks:
        np.testing.assert_array_equal(r3.masks[k], r2.masks[k],
                                      err_msg=f"{name} {method} {k}")
    else:
      assert _overlap(r2.masks, r3.masks) >= 0.97, method
    assert all(np.all(np.isfinite(s)) for s in r3.scores.values())
    results[method] = (k2, k3, r2, r3)
  if name == "vit":  # the custom layer's weight is listed, on both paths
    for r in results["sbp"][2:]:
      assert [row["layer"] for row in r.report if not row["pruned"]] == ["pos"]
  k2, k3, r2, r3 = results["sbp"]
  final2, p2 = _workflow_tf_keras(name, k2, r2.masks, saved["dir"])
  final3, p3 = _workflow_keras3(name, k3, r3.masks, saved["dir"])
  for final, exporter, tag in ((final2, export, "tf_keras"),
                               (final3, keras3.export, "keras3")):
    x = _data(name)[0]
    report = exporter.to_tflite(final, str(saved["dir"] / f"{name}_{tag}.tflite"),
                                representative_data=x, compare_dense=False,
                                time_runs=0)
    assert report["verified"], (tag, report)
  saved["files"] += [(p2, "tf_keras", dict(r2.masks)),
                     (p3, "keras3", dict(r3.masks))]


_LOAD = r"""
import json, sys
import numpy as np
import sbp_tf
from sbp_tf import keras3, pruning
import keras as keras3_module
from sbp_tf.compat import keras as keras2_module
sys.path.insert(0, sys.argv[2])
import test_client_families as fam  # registers the custom layer classes
fam.pos_embedding(keras2_module); fam.pos_embedding(keras3_module)
out = {}
for path, kind, masks_path in json.load(open(sys.argv[1])):
  masks = dict(np.load(masks_path))
  if kind == "keras3":
    m = keras3_module.saving.load_model(path)
    targets = keras3.prunable_targets(m)
    held = sorted(keras3.masks_of(m)) == sorted(masks)
  else:
    m = keras2_module.models.load_model(path)
    targets = pruning.prunable_targets(m)
    held = True
  zeros = all(not np.any(t.variable.numpy()[masks[t.key] == 0])
              for t in targets if t.key in masks)
  out[path] = bool(zeros and held)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_saved_families_keep_their_zeros_in_a_fresh_process(saved):
  if not saved["files"]:
    pytest.skip("no family workflow ran in this session")
  listing = []
  for i, (path, kind, masks) in enumerate(saved["files"]):
    mpath = str(saved["dir"] / f"masks_{i}.npz")
    np.savez(mpath, **masks)
    listing.append((path, kind, mpath))
  spec = saved["dir"] / "files.json"
  spec.write_text(json.dumps(listing))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  here = os.path.dirname(os.path.abspath(__file__))
  proc = subprocess.run([sys.executable, "-c", _LOAD, str(spec), here],
                        capture_output=True, text=True, env=env, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert len(result) == len(listing) and all(result.values()), result
