"""The pruning engine's checks behave the same on both Keras paths, and no
model makes them fail silently (issue 21, items 1, 3, 4, 5, 8, 9).

Each test taking ``path`` (the conftest fixture, :class:`paths_testlib.Path`)
runs once per path (``tf_keras`` through :mod:`sbp_tf.pruning`, ``keras3``
through :mod:`sbp_tf.keras3`) on the same architecture built from that
path's Keras, as Keras runs its suite once per backend.
"""

import warnings

import keras as keras3_module
import numpy as np
import pytest

from sbp_tf import keras3, pruning
from sbp_tf.compat import keras as keras2_module
from sbp_tf.pruning import rounds
from paths_testlib import pos_embedding


def _vit_like(K):
  L = K.layers
  inp = K.Input((8, 8, 3))
  x = L.Conv2D(16, 4, strides=4, name="patch")(inp)
  x = L.Reshape((4, 16))(x)
  x = pos_embedding(K)(name="pos")(x)
  x = L.Flatten()(x)
  return K.Model(inp, L.Dense(5, name="head")(x))


def _ones(model, path):
  return {t.key: np.ones(t.variable.shape, np.float32)
          for t in path.targets(model)}


def test_a_constant_adding_layer_does_not_fake_a_connection(path):
  # Item 1: with the patch embedding fully pruned the output is x-free,
  # yet |P| > 0 made the old single pass call it connected.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # PosEmbedding has no linear form
    model = _vit_like(path.keras)
    masks = _ones(model, path)
    assert path.connectivity(model, masks).connected
    masks["patch/kernel"][:] = 0
    conn = path.connectivity(model, masks)
  x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
  for t in path.targets(model):
    t.variable.assign(t.variable.numpy() * masks[t.key])
  out = np.asarray(model(x)) - np.asarray(model(np.zeros_like(x)))
  assert np.abs(out).max() == 0  # the output no longer depends on x
  assert not conn.connected and conn.reachable_fraction == 0.0
  assert "head/kernel" in conn.dead


def _embedding_model(K, vocab=50, dim=8, length=6, classes=3):
  L = K.layers
  inp = K.Input((length,), dtype="int32")
  x = L.Embedding(vocab, dim, name="emb")(inp)
  x = L.GlobalAveragePooling1D()(x)
  return K.Model(inp, L.Dense(classes, name="head")(x))


def test_embedding_connectivity_reaches_through_any_kept_row(path):
  # Item 4: the old probe read token id 1 only.
  model = _embedding_model(path.keras)
  masks = _ones(model, path)
  masks["emb/embeddings"][1] = 0                  # row 1 pruned, rest kept
  assert path.connectivity(model, masks).connected
  masks["emb/embeddings"][:] = 0
  masks["emb/embeddings"][37, 2:] = 1             # one other row kept
  assert path.connectivity(model, masks).connected
  masks["emb/embeddings"][37] = 0
  assert not path.connectivity(model, masks).connected


def test_synflow_scores_every_embedding_row_by_the_closed_form(path):
  # Item 5: the linearized embedding is onehot(all ids) @ |E| = sum_v |E_v|,
  # so R = sum_{d,c} |W_dc| s_d with s = sum_v |E_v| (GAP of equal rows),
  # S(E_vd) = |E_vd| sum_c |W_dc|, S(W_dc) = |W_dc| s_d.
  model = _embedding_model(path.keras)
  e = np.abs(model.get_layer("emb").get_weights()[0].astype(np.float64))
  w = np.abs(model.get_layer("head").get_weights()[0].astype(np.float64))
  scores = path.score(model, "synflow")
  np.testing.assert_allclose(scores["emb/embeddings"],
                             e * w.sum(1)[None, :], rtol=1e-6)
  np.testing.assert_allclose(scores["head/kernel"],
                             w * e.sum(0)[:, None], rtol=1e-6)
  assert np.all(scores["emb/embeddings"] > 0)     # every row on a path


def _bidirectional(K, rnn="SimpleRNN", tied=True):
  L = K.layers
  inp = K.Input((5, 4))
  bi = L.Bidirectional(getattr(L, rnn)(3, return_sequences=True), name="bi")
  x = L.GlobalAveragePooling1D()(bi(inp))
  model = K.Model(inp, L.Dense(2, name="head")(x))
  if tied:  # backward half = forward half, and the head reads both alike
    n = len(bi.get_weights()) // 2
    ws = bi.get_weights()
    bi.set_weights(ws[:n] + ws[:n])
    head = model.get_layer("head")
    k, b = head.get_weights()
    head.set_weights([np.concatenate([k[:3], k[:3]]), b])
  return model


@pytest.mark.parametrize("rnn", ["SimpleRNN", "LSTM", "GRU"])
def test_synflow_scores_both_directions_of_a_bidirectional_rnn(path, rnn):
  # Item 3: with tied halves and a time-symmetric input and pooling, both
  # directions carry the same flow: their scores must be equal (and > 0).
  model = _bidirectional(path.keras, rnn)
  scores = path.score(model, "synflow")
  fwd = {k.split("/", 2)[2]: v for k, v in scores.items() if "/forward_" in k}
  bwd = {k.split("/", 2)[2]: v for k, v in scores.items()
         if "/backward_" in k}
  assert sorted(fwd) == sorted(bwd) and len(fwd) == 2
  for k in fwd:
    assert np.all(fwd[k] > 0) and np.all(bwd[k] > 0), k
    np.testing.assert_allclose(bwd[k], fwd[k], rtol=1e-9, err_msg=k)


def _squeeze_excite(K):
  L = K.layers
  inp = K.Input((6, 6, 4))
  x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
  g = L.GlobalAveragePooling2D(keepdims=True)(x)
  g = L.Conv2D(2, 1, activation="relu", name="se_reduce")(g)
  g = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(g)
  x = L.Multiply(name="excite")([x, g])
  x = L.GlobalAveragePooling2D()(x)
  return K.Model(inp, L.Dense(3, name="head")(x))


def _collapse_message(path, model, masks, sparsity=0.5):
  diag = path.diagnose(model, masks)
  with pytest.raises(ValueError) as err:
    rounds.check_collapse(diag, "prune('x')", sparsity, "error", rounds=1)
  return str(err.value)


def test_collapse_of_a_gate_names_the_gate_and_only_helpful_fixes(path):
  # Item 8: the old message said "a skip connection" and suggested
  # keep_first/keep_last, which cannot help a middle layer.
  model = _squeeze_excite(path.keras)
  masks = _ones(model, path)
  masks["se_reduce/kernel"][:] = 0
  msg = _collapse_message(path, model, masks)
  assert "se_reduce/kernel (gates of a Multiply" in msg
  assert "skip connection" not in msg and "keep_first" not in msg
  assert "scope='layerwise'" in msg
  masks = _ones(model, path)
  masks["head/kernel"][:] = 0                     # the last layer: a real cut
  msg = _collapse_message(path, model, masks)
  assert "outputs disconnected" in msg and "keep_first/keep_last" in msg


def test_collapse_of_a_bidirectional_half_names_the_direction(path):
  model = _bidirectional(path.keras, "LSTM", tied=False)
  masks = _ones(model, path)
  for k in masks:
    if "/backward_" in k:
      masks[k][:] = 0
  msg = _collapse_message(path, model, masks)
  assert "one direction of a Bidirectional RNN" in msg
  assert "skip connection" not in msg


def _text_model(K):
  L = K.layers
  inp = K.Input((6,), dtype="int32")
  x = L.Embedding(40, 8, name="emb")(inp)
  x = L.LSTM(6, return_sequences=True, name="lstm")(x)
  x = L.MultiHeadAttention(2, 4, name="mha")(x, x)
  x = L.GlobalAveragePooling1D()(x)
  return K.Model(inp, L.Dense(3, name="head")(x))


def test_both_paths_prune_the_same_tensors_and_select_identical_masks():
  # Item 9: Keras 3 pruned 1 of these tensors (the head) before.
  k2, k3 = _text_model(keras2_module), _text_model(keras3_module)
  for layer in k2.layers:
    if layer.weights:
      k3.get_layer(layer.name).set_weights(layer.get_weights())
  keys2 = [t.key for t in pruning.prunable_targets(k2)]
  keys3 = [t.key for t in keras3.prunable_targets(k3)]
  assert keys3 == keys2 and len(keys2) == 8, keys3
  assert "lstm/lstm_cell/recurrent_kernel" in keys3 and "emb/embeddings" in keys3
  assert "mha/query/kernel" in keys3
  x = np.random.default_rng(0).integers(0, 40, size=(8, 6))
  y = np.arange(8) % 3
  for method in ("magnitude", "random", "synflow"):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      r2 = pruning.prune(k2, method, 0.8, data=(x, y), seed=1, rounds=3)
      r3 = keras3.prune(k3, method, 0.8, data=(x, y), seed=1, rounds=3)
    for k in keys2:
      np.testing.assert_array_equal(r3.masks[k], r2.masks[k],
                                    err_msg=f"{method} {k}")


def test_keras3_masks_on_rnn_embedding_and_attention_hold_through_fit():
  model = _text_model(keras3_module)
  x = np.random.default_rng(0).integers(0, 40, size=(16, 6))
  y = np.arange(16) % 3
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = keras3.prune(model, "sbp", 0.8, data=(x, y))
  keras3.mask(model, result.masks)
  model.compile(keras3_module.optimizers.SGD(0.5),
                keras3_module.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  model.fit(x, y, epochs=2, batch_size=8, verbose=0)
  for t in keras3.prunable_targets(model):
    w = t.variable.numpy()
    assert np.all(w[result.masks[t.key] == 0] == 0), t.key
  assert sorted(keras3.masks_of(model)) == sorted(result.masks)


def test_unprunable_custom_weights_are_listed_on_both_paths(path):
  model = _vit_like(path.keras)
  assert path.unprunable_layers(model) == [
      dict(layer="pos", type="PosEmbedding", weights=64)]


def test_diagnose_reports_first_and_last_layers(path):
  model = _squeeze_excite(path.keras)
  diag = path.diagnose(model, _ones(model, path))
  assert diag["edge_layers"] == ["stem/kernel", "head/kernel"]


def test_a_softmax_head_is_connected_only_through_its_logits(path):
  # The uniform softmax SynFlow uses is a constant: as a head it would make
  # every output "depend" on nothing (or, in the old single pass, on all).
  K = path.keras
  inp = K.Input((6,))
  h = K.layers.Dense(4, name="hidden")(inp)
  out = K.layers.Softmax()(K.layers.Dense(3, name="logits")(h))
  model = K.Model(inp, out)
  masks = _ones(model, path)
  assert path.connectivity(model, masks).connected
  masks["hidden/kernel"][:] = 0
  conn = path.connectivity(model, masks)
  assert not conn.connected and conn.reachable_fraction == 0.0


def _two_in_two_out(K):
  L = K.layers
  img, vec = K.Input((6, 6, 2), name="img"), K.Input((5,), name="vec")
  h = L.Concatenate()([L.Flatten()(L.Conv2D(4, 3, name="conv")(img)),
                       L.Dense(6, name="vdense")(vec)])
  return K.Model([img, vec], [L.Dense(3, name="cls")(h),
                              L.Dense(1, name="reg")(h)])


@pytest.mark.parametrize("family", ["text", "two_io"])
def test_export_verifies_on_both_paths(path, family, tmp_path):
  # One export for both Kerases: token ids, recurrent layers, attention,
  # several named inputs and outputs (Keras 3 exported one input before).
  K = path.keras
  model = _text_model(K) if family == "text" else _two_in_two_out(K)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = path.prune(model, "magnitude", 0.8)
  if path.name == "keras3":
    keras3.mask(model, result.masks)
  r = path.export.to_tflite(model, tmp_path / "m.tflite",
                            compare_dense=False, time_runs=0)
  assert r["verified"], r
  assert r["num_sparse_tensors"] >= 1 or r["sparse_fallback"]
  if family == "two_io":
    assert sorted(r["outputs"]) == ["cls", "reg"]


def _bn_cnn(K):
  L = K.layers
  inp = K.Input((8, 8, 3))
  x = L.Conv2D(6, 3, padding="same", use_bias=False, name="c1")(inp)
  x = L.ReLU()(L.BatchNormalization(name="bn1")(x))
  x = L.Conv2D(8, 3, strides=2, use_bias=False, name="c2")(x)
  x = L.ReLU()(L.BatchNormalization(name="bn2")(x))
  return K.Model(inp, L.Dense(4, name="head")(L.GlobalAveragePooling2D()(x)))


def test_sbp_scores_through_batch_norm_are_identical_on_both_paths():
  # First-order scoring runs batch norm through the fused kernel on both
  # Kerases (compat.fused_normalization): same weights and batch give the
  # same scores to the bit (Keras 3's own unfused ops differ in round-off).
  k2, k3 = _bn_cnn(keras2_module), _bn_cnn(keras3_module)
  k3.set_weights(k2.get_weights())
  x = np.random.default_rng(1).normal(size=(16, 8, 8, 3)).astype("float32")
  y = np.arange(16) % 4
  for mode in ("training", "inference"):
    r2 = pruning.prune(k2, "sbp", 0.7, data=(x, y), seed=0, scoring_mode=mode)
    r3 = keras3.prune(k3, "sbp", 0.7, data=(x, y), seed=0, scoring_mode=mode)
    for k in r2.scores:
      np.testing.assert_array_equal(r3.scores[k], r2.scores[k],
                                    err_msg=f"{mode} {k}")
      np.testing.assert_array_equal(r3.masks[k], r2.masks[k])
