"""Pruning users' own tf_keras models: every method, wrap, fit, strip, save.

Each model kind (subclassed, Embedding + LSTM/GRU, a transformer encoder, a
Conv3D net, and keras.applications MobileNetV2 / EfficientNetB0) is pruned
at 90% by every method on random data; then the exact kept count, the
per-layer report, wrapping (tfmot / MaskedLayer, or in-place constraints for
a subclassed model), two training steps with the zeros holding, strip and a
`.keras` round trip are checked.
"""

import warnings

import numpy as np
import pytest

from sbp_tf import masking, pruning
from sbp_tf.compat import keras, tf
import sbp_tf.tfmot as sbp_tfmot

METHODS = ["sbp", "magnitude", "random", "grasp", "synflow"]
SEQ, VOCAB = 6, 50


@keras.utils.register_keras_serializable(package="client_test")
class ResMLP(keras.Model):
  """The user's subclassed model: two Dense layers and a residual add."""

  def __init__(self, name="res_mlp", **kwargs):
    super().__init__(name=name, **kwargs)
    self.d1 = keras.layers.Dense(16, activation="relu", name="d1")
    self.d2 = keras.layers.Dense(8, name="d2")
    self.head = keras.layers.Dense(10, name="head")

  def call(self, x):
    return self.head(x + self.d2(self.d1(x)))


def subclassed():
  m = ResMLP()
  m(tf.ones((2, 8)))
  return m, "float"


def recurrent(kind):
  x = keras.Input((SEQ,), dtype="int32")
  h = keras.layers.Embedding(VOCAB, 8, name="emb")(x)
  h = getattr(keras.layers, kind)(16, name="rnn")(h)
  return keras.Model(x, keras.layers.Dense(10, name="head")(h)), "int"


def transformer():
  x = keras.Input((SEQ,), dtype="int32")
  h = keras.layers.Embedding(VOCAB, 16, name="emb")(x)
  for b in range(2):
    a = keras.layers.MultiHeadAttention(2, 8, name=f"mha{b}")(h, h)
    h = keras.layers.LayerNormalization(name=f"ln{b}a")(h + a)
    f = keras.layers.Dense(32, activation="gelu", name=f"ff{b}a")(h)
    f = keras.layers.Dense(16, name=f"ff{b}b")(f)
    h = keras.layers.LayerNormalization(name=f"ln{b}b")(h + f)
  h = keras.layers.GlobalAveragePooling1D()(h)
  return keras.Model(x, keras.layers.Dense(10, name="head")(h)), "int"


def conv3d():
  x = keras.Input((6, 6, 6, 1))
  h = keras.layers.Conv3D(4, 3, activation="relu", name="c1")(x)
  h = keras.layers.Conv3D(8, 3, activation="relu", name="c2")(h)
  h = keras.layers.Flatten()(h)
  return keras.Model(x, keras.layers.Dense(10, name="head")(h)), "float"


def application(name):
  m = getattr(keras.applications, name)(
      weights=None, input_shape=(32, 32, 3), classes=10,
      classifier_activation=None)
  return m, "float"


FAST = {"subclassed": subclassed, "lstm": lambda: recurrent("LSTM"),
        "gru": lambda: recurrent("GRU"), "transformer": transformer,
        "conv3d": conv3d}
SLOW = {"mobilenetv2": lambda: application("MobileNetV2"),
        "efficientnetb0": lambda: application("EfficientNetB0")}


def _data(model, kind, n=8):
  rng = np.random.default_rng(0)
  shape = (n,) + tuple(model.inputs[0].shape[1:]) if model.inputs else (n, 8)
  x = (rng.integers(1, VOCAB, shape).astype("int32") if kind == "int"
       else rng.normal(size=shape).astype("float32"))
  return x, rng.integers(0, 10, n)


def _zeros_hold(model, masks) -> bool:
  by_key = {t.key: t.variable.numpy() for t in pruning.prunable_targets(model)}
  return all(not np.any(by_key[k][np.asarray(m) == 0]) for k, m in
             masks.items())


def _wrap(model, masks):
  """tfmot for functional models, in-place constraints for subclassed."""
  if model.inputs:
    return sbp_tfmot.wrap(model, masks), sbp_tfmot.callbacks()
  return masking.constrain(model, masks), []


def _run(build, method, tmp_path):
  keras.utils.set_random_seed(0)
  model, kind = build()
  x, y = _data(model, kind)
  targets = pruning.prunable_targets(model)
  n = sum(int(np.prod(t.variable.shape)) for t in targets)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    res = pruning.prune(model, method, 0.9, data=(x, y), seed=0, rounds=1,
                        on_collapse="ignore")
  assert res.masks.kept() == round(0.1 * n)
  rows = res.masks.report(model)
  assert [r["layer"] for r in rows.pruned_rows()] == [t.key for t in targets]
  assert res.diagnostics["collapsed"] is not None
  wrapped, callbacks = _wrap(model, res.masks)
  wrapped.compile(keras.optimizers.Adam(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
  assert _zeros_hold(wrapped, res.masks)
  final = sbp_tfmot.strip(wrapped)
  path = str(tmp_path / "final.keras")
  final.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             final.predict(x, verbose=0), atol=1e-5)
  assert _zeros_hold(loaded, res.masks)
  return model, res


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(FAST))
def test_every_method_on_client_models(name, method, tmp_path):
  if name == "subclassed" and method == "synflow":
    # SynFlow needs the model's inputs, which a subclassed model does not
    # record (input handling is outside this suite): a named error.
    model, _ = subclassed()
    with pytest.raises(ValueError, match="Fix"):
      pruning.prune(model, "synflow", 0.9, rounds=1)
    return
  model, res = _run(FAST[name], method, tmp_path)
  keys = list(res.masks)
  if name in ("lstm", "gru"):
    cell = "lstm_cell" if name == "lstm" else "gru_cell"
    assert keys == ["emb/embeddings", f"rnn/{cell}/kernel",
                    f"rnn/{cell}/recurrent_kernel", "head/kernel"]
  if name == "transformer":
    assert "mha0/query/kernel" in keys and "mha1/attention_output/kernel" in keys
  if name == "subclassed":
    assert keys == ["d1/kernel", "d2/kernel", "head/kernel"]
    assert "connectivity_unavailable" in res.diagnostics
  if method == "synflow":
    assert all(np.any(s) for s in res.scores.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_applications_every_method(name, tmp_path):
  for method in METHODS:
    model, res = _run(SLOW[name], method, tmp_path)
    if method == "synflow":
      # Before the linearization of ReLU(6.) and of the squeeze-excite
      # gates, 100% of MobileNetV2's conv scores and 37 of EfficientNet's
      # 82 layers were zero; now no layer has only zero scores.
      # One shot at 90% still empties the largest layers (scores ~R / n_l:
      # exact SynFlow, see docs/pruning.md); rounds avoid it (next test).
      assert all(np.any(s) for s in res.scores.values())


@pytest.mark.slow
def test_efficientnet_unpruned_connected_and_synflow_rounds_keep_layers():
  keras.utils.set_random_seed(0)
  model, _ = application("EfficientNetB0")
  conn = pruning.connectivity(model)
  assert conn.connected and conn.reachable_fraction == 1.0 and not conn.dead
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    res = pruning.prune(model, "synflow", 0.9, rounds=5)
  assert res.diagnostics["collapsed"] == [] and res.diagnostics["connected"]


def test_relu6_chain_synflow_scores_nonzero():
  # The user's repro: four Conv2D -> ReLU(6.) and a Dense head. ReLU(6.)
  # clipped the all-ones signal: every conv score was 0.
  keras.utils.set_random_seed(0)
  layers = [keras.Input((8, 8, 3))]
  for i in range(4):
    layers += [keras.layers.Conv2D(8, 3, padding="same", name=f"c{i}"),
               keras.layers.ReLU(6.0)]
  model = keras.Sequential(layers + [keras.layers.Flatten(),
                                     keras.layers.Dense(10, name="head")])
  scores = pruning.score(model, "synflow")
  for k, v in scores.items():
    assert np.all(v > 0), k
  # The same scores as the copy without the ReLU(6.) layers: they are
  # linearized to the identity.
  lin = keras.Sequential([keras.Input((8, 8, 3))] + [
      keras.layers.Conv2D(8, 3, padding="same", name=f"c{i}")
      for i in range(4)] + [keras.layers.Flatten(),
                            keras.layers.Dense(10, name="head")])
  lin.set_weights(model.get_weights())
  want = pruning.score(lin, "synflow")
  for k in want:
    np.testing.assert_allclose(scores[k], want[k], rtol=1e-12)


def test_report_lists_unknown_layer_as_not_pruned():
  class Scale(keras.layers.Layer):
    def build(self, shape):
      self.w = self.add_weight(name="w", shape=(shape[-1],))

    def call(self, x):
      return x * self.w

  x = keras.Input((4,))
  model = keras.Model(x, keras.layers.Dense(3, name="d")(Scale(name="s")(x)))
  masks = pruning.Masks.ones_like(model)
  rep = masks.report(model)
  assert rep.not_pruned() == ["s"] and rep.total_weights == 12
  assert "(not pruned: Scale)" in rep.to_markdown()
  pruning.register_target(Scale, ("w",))
  try:
    assert [t.key for t in pruning.prunable_targets(model)] == ["s/w", "d/kernel"]
    assert pruning.Masks.ones_like(model).report(model).not_pruned() == []
  finally:
    from sbp_tf.pruning import targets as targets_lib
    targets_lib._USER.clear()  # pylint: disable=protected-access


def test_unknown_layer_is_linearized_with_a_warning_not_a_crash():
  x = keras.Input((4,))
  h = keras.layers.Lambda(lambda t: tf.nn.relu6(t), name="clip")(
      keras.layers.Dense(4, name="d1")(x))
  model = keras.Model(x, keras.layers.Dense(2, name="d2")(h))
  with pytest.warns(UserWarning, match="no linear form for 'clip'"):
    conn = pruning.connectivity(model)
  assert conn.connected


def test_dead_branch_behind_live_skip_is_reported():
  x = keras.Input((4,))
  b = keras.layers.Dense(4, name="b1")(x)
  b = keras.layers.Dense(4, name="b2")(b)
  model = keras.Model(x, keras.layers.Add()([x, b]))
  masks = {"b1/kernel": np.zeros((4, 4)), "b2/kernel": np.ones((4, 4))}
  conn = pruning.connectivity(model, masks)
  # The skip keeps every output reachable; b2's kept weights are on no path.
  assert conn.connected and conn.dead == ("b2/kernel",)


def test_multiply_gate_is_pass_through_and_conserves_flow():
  x = keras.Input((2, 2, 3))
  g = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
  g = keras.layers.Conv2D(3, 1, activation="sigmoid", name="gate")(g)
  model = keras.Model(x, keras.layers.Multiply()([x, g]))
  conn = pruning.connectivity(model, {"gate/kernel": np.zeros((1, 1, 3, 3))})
  assert conn.connected  # a fully pruned gate passes the signal (value 1)
  res = pruning.prune(model, "synflow", 0.5, rounds=1)
  # R = sum of x = 12 (gate 1); the gate's kernel gets half the flow.
  np.testing.assert_allclose(res.scores["gate/kernel"].sum(), 6.0, rtol=1e-9)
