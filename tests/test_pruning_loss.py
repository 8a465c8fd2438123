"""The user's loss and data: several inputs and outputs, softmax heads.

The saliency loss is ``L = sum_o w_o * mean_batch l_o`` (summed over
batches); SBP's ``|W dL/dW|`` is checked against a hand-written
``GradientTape`` of that sum, SynFlow on several (and integer) inputs
against its closed form.
"""

import warnings

import numpy as np
import pytest

from sbp_tf import pruning
from sbp_tf.compat import keras, tf
from sbp_tf.pruning import checks, saliency
from sbp_tf.pruning.targets import prunable_targets

SCE = keras.losses.SparseCategoricalCrossentropy


def _two_io(kind="list", seed=0):
  """Image + vector in; 10-way logits ('cls') + a scalar ('reg') out."""
  keras.utils.set_random_seed(seed)
  img, vec = keras.Input((4, 4, 1), name="img"), keras.Input((5,), name="vec")
  h = keras.layers.Flatten()(keras.layers.Conv2D(3, 3, name="c1")(img))
  h = keras.layers.Concatenate()([h, keras.layers.Dense(4, name="dv")(vec)])
  h = keras.layers.Dense(8, activation="tanh", name="d1")(h)
  cls = keras.layers.Dense(10, name="cls")(h)
  reg = keras.layers.Dense(1, name="reg")(h)
  if kind == "dict":
    return keras.Model({"img": img, "vec": vec}, {"cls": cls, "reg": reg})
  return keras.Model([img, vec], [cls, reg])


def _two_io_data(n=16):
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(n, 4, 4, 1)).astype("float32"),
       rng.normal(size=(n, 5)).astype("float32"))
  y = (rng.integers(0, 10, n).astype("int64"),
       rng.normal(size=(n, 1)).astype("float32"))
  return x, y


LOSS = {"cls": SCE(from_logits=True), "reg": "mse"}
WEIGHTS = {"reg": 0.5}


def _manual_sbp(model, x, y):
  """|W dL/dW| with L = mean CE(cls) + 0.5 * mean MSE(reg), by hand."""
  variables = [t.variable for t in prunable_targets(model)]
  with tf.GradientTape() as tape:
    cls, reg = model(list(x), training=True)
    loss = (tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        y[0], cls, from_logits=True)) +
            0.5 * tf.reduce_mean(keras.losses.mse(y[1], reg)))
  grads = tape.gradient(loss, variables)
  return {t.key: np.abs(t.variable.numpy() * g.numpy()).astype(np.float64)
          for t, g in zip(prunable_targets(model), grads)}


def _assert_close(got, want, rtol=1e-5):
  assert set(got) == set(want)
  for k in want:
    scale = np.abs(want[k]).max()
    assert scale > 0, k
    np.testing.assert_allclose(got[k], want[k], rtol=0, atol=rtol * scale,
                               err_msg=k)


def test_two_inputs_two_outputs_sbp_equals_the_weighted_loss_gradient():
  x, y = _two_io_data()
  want = _manual_sbp(_two_io(), x, y)
  # The same numbers from every layout fit() takes.
  layouts = {
      "tuples": dict(data=(x, y), loss=LOSS, loss_weights=WEIGHTS),
      "lists": dict(data=(list(x), list(y)), loss=LOSS, loss_weights=WEIGHTS),
      "loss list": dict(data=(x, y), loss=[SCE(from_logits=True), "mse"],
                        loss_weights=[1.0, 0.5]),
      "callable": dict(data=(x, y), loss=lambda t, p: (
          tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
              t[0], p[0], from_logits=True)) +
          0.5 * tf.reduce_mean(keras.losses.mse(t[1], p[1])))),
  }
  for name, kw in layouts.items():
    got = pruning.score(_two_io(), "sbp", **kw)
    _assert_close(got, want)
    assert name and got.method == "sbp"
  # Dict inputs and targets, keyed by input / output name.
  got = pruning.score(_two_io("dict"), "sbp",
                      data=({"img": x[0], "vec": x[1]},
                            {"cls": y[0], "reg": y[1]}),
                      loss=LOSS, loss_weights=WEIGHTS)
  _assert_close(got, want)


def test_a_dataset_of_two_batches_sums_the_batch_gradients():
  x, y = _two_io_data()
  halves = [tuple(a[s] for a in x) for s in (slice(0, 8), slice(8, 16))]
  ys = [tuple(a[s] for a in y) for s in (slice(0, 8), slice(8, 16))]
  # |W * (g_1 + g_2)|: the gradients are summed, then scored.
  model = _two_io()
  variables = [t.variable for t in prunable_targets(model)]
  g_sum = None
  for hx, hy in zip(halves, ys):
    with tf.GradientTape() as tape:
      cls, reg = model(list(hx), training=True)
      loss = (tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
          hy[0], cls, from_logits=True)) +
              0.5 * tf.reduce_mean(keras.losses.mse(hy[1], reg)))
    g = [a.numpy().astype(np.float64) for a in tape.gradient(loss, variables)]
    g_sum = g if g_sum is None else [a + b for a, b in zip(g_sum, g)]
  want = {t.key: np.abs(t.variable.numpy() * a)
          for t, a in zip(prunable_targets(model), g_sum)}
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
  got = pruning.score(_two_io(), "sbp", data=ds, num_batches=2, loss=LOSS,
                      loss_weights=WEIGHTS)
  _assert_close(got, want)


@pytest.mark.parametrize("method", ["sbp", "grasp", "synflow", "magnitude",
                                    "random"])
def test_every_method_prunes_a_two_input_two_output_model(method):
  x, y = _two_io_data()
  model = _two_io()
  result = pruning.prune(model, method, 0.5, data=(x, y), loss=LOSS,
                         loss_weights=WEIGHTS, rounds=2, seed=0)
  n = sum(int(np.prod(t.variable.shape)) for t in prunable_targets(model))
  assert result.masks.kept() == round(0.5 * n)
  for t in prunable_targets(model):  # pruned weights are zero in the model
    assert np.all(t.variable.numpy()[result.masks[t.key] == 0] == 0)
  if method in ("sbp", "grasp"):
    assert result.diagnostics["from_logits"] == {"cls": True, "reg": None}
    assert "reg: mean_squared_error x 0.5" in result.diagnostics["loss"]


def test_multi_output_without_a_loss_names_the_fix():
  x, y = _two_io_data()
  model = _two_io()
  before = [w.copy() for w in model.get_weights()]
  with pytest.raises(ValueError, match=r"2 outputs \['cls', 'reg'\].*Fix: "
                     r"pass loss=\{name: loss\}"):
    pruning.prune(model, "sbp", 0.5, data=(x, y))
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kw,match", [
    (dict(loss={"cls": "mse", "oops": "mse"}), r"output\(s\) \['oops'\]"),
    (dict(loss=["mse"]), r"1 entries but the model has 2 outputs"),
    (dict(loss=lambda t, p: 0.0, loss_weights=[1, 2]), "one callable"),
    (dict(loss=LOSS, loss_weights={"reg": -1.0}), r"finite numbers >= 0"),
    (dict(loss=LOSS, data_y="one"), r"targets are one array.*2 outputs"),
    (dict(loss=LOSS, data_y="dict"), r"output\(s\) \['reg'\] have a loss and no"),
])
def test_losses_and_targets_that_do_not_fit_the_outputs(kw, match):
  x, y = _two_io_data()
  kind = kw.pop("data_y", None)
  if kind == "one":
    y = y[0]
  elif kind == "dict":
    y = {"cls": y[0]}
  with pytest.raises(ValueError, match=match):
    pruning.prune(_two_io(), "sbp", 0.5, data=(x, y), **kw)


# --- Softmax heads -----------------------------------------------------------


def _head(kind, seed=0):
  keras.utils.set_random_seed(seed)
  inp = keras.Input((6, 6, 1))
  h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu",
                                                 name="c1")(inp))
  h = keras.layers.Dense(8, activation="tanh", name="d1")(h)
  if kind == "dense":
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax",
                                               name="out")(h))
  out = keras.layers.Dense(10, name="out")(h)
  if kind == "activation":
    out = keras.layers.Activation("softmax")(out)
  elif kind == "layer":
    out = keras.layers.Softmax()(out)
  return keras.Model(inp, out)


def _head_data():
  rng = np.random.default_rng(1)
  return (rng.normal(size=(16, 6, 6, 1)).astype("float32"),
          rng.integers(0, 10, 16).astype("int64"))


@pytest.mark.parametrize("kind", ["dense", "activation", "layer"])
def test_a_softmax_head_scores_as_its_logits_model(kind):
  x, y = _head_data()
  logits = _head("none")
  soft = _head(kind)
  # Same loss value: the default on the softmax head reads probabilities.
  plan = saliency.resolve_loss(soft)
  assert plan.from_logits == {plan.names[0]: False}
  loss_soft = float(tf.reduce_mean(plan.outputs[0].fn(y, soft(x))))
  loss_logits = float(tf.reduce_mean(
      saliency.resolve_loss(logits).outputs[0].fn(y, logits(x))))
  assert loss_soft == pytest.approx(loss_logits, rel=1e-6)
  assert loss_logits == pytest.approx(np.log(10.0), rel=0.2)  # at init
  # Same scores (SBP; GraSP's temperature acts on the softmax's logits).
  for method in ("sbp", "grasp"):
    want = pruning.score(logits, method, data=(x, y))
    got = pruning.score(soft, method, data=(x, y))
    _assert_close(got, want, rtol=1e-6)
  result = pruning.prune(_head(kind), "sbp", 0.5, data=(x, y))
  assert list(result.diagnostics["from_logits"].values()) == [False]
  assert "softmax output detected" in result.diagnostics["loss"]


def test_from_logits_comes_from_the_users_loss_and_contradictions_warn():
  x, y = _head_data()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = pruning.prune(_head("dense"), "sbp", 0.5, data=(x, y),
                      loss=SCE(from_logits=True))
  assert r.diagnostics["from_logits"] == {"out": True}
  assert any("ends in a softmax" in str(w.message) and "from_logits=False"
             in str(w.message) for w in caught)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = pruning.prune(_head("none"), "sbp", 0.5, data=(x, y), loss=SCE())
  assert r.diagnostics["from_logits"] == {"out": False}
  assert any("is linear (logits)" in str(w.message) for w in caught)
  with warnings.catch_warnings():  # consistent choices: silent
    warnings.simplefilter("error")
    pruning.prune(_head("dense"), "sbp", 0.5, data=(x, y), loss=SCE())
    pruning.prune(_head("none"), "sbp", 0.5, data=(x, y))


def test_a_final_softmax_of_a_nested_model_is_detected():
  inner = _head("dense")
  outer = keras.Sequential([inner])
  assert saliency.output_activation(outer.layers[-1]) == "softmax"
  assert saliency.resolve_loss(outer).outputs[0].from_logits is False


# --- SynFlow on several and integer inputs ------------------------------------


def _two_dense_inputs(kind):
  keras.utils.set_random_seed(4)
  a, b = keras.Input((6,), name="a"), keras.Input((5,), name="b")
  h = keras.layers.Concatenate()([keras.layers.Dense(3, name="da")(a),
                                  keras.layers.Dense(4, name="dv")(b)])
  h = keras.layers.Dense(8, activation="relu", name="d1")(h)
  c = keras.layers.Dense(10, name="cls")(h)
  r = keras.layers.Dense(1, name="reg")(h)
  if kind == "dict":
    return keras.Model({"b": b, "a": a}, {"cls": c, "reg": r})
  if kind == "tuple":
    return keras.Model((a, b), (c, r))
  return keras.Model([a, b], [c, r])


def test_synflow_feeds_ones_to_every_input_exactly():
  # R = v^T h, h = |W1|^T u, u = [|Wa|^T 1; |Wv|^T 1], v = |Wc| 1 + |Wr| 1.
  m = _two_dense_inputs("list")
  w = {t.key: np.abs(t.variable.numpy().astype(np.float64))
       for t in prunable_targets(m)}
  u = np.concatenate([w["da/kernel"].sum(0), w["dv/kernel"].sum(0)])
  h = w["d1/kernel"].T @ u
  v = w["cls/kernel"].sum(1) + w["reg/kernel"].sum(1)
  back = w["d1/kernel"] @ v
  want = {"cls/kernel": w["cls/kernel"] * h[:, None],
          "reg/kernel": w["reg/kernel"] * h[:, None],
          "d1/kernel": w["d1/kernel"] * np.outer(u, v),
          "da/kernel": w["da/kernel"] * back[None, :3],
          "dv/kernel": w["dv/kernel"] * back[None, 3:]}
  for kind in ("list", "tuple", "dict"):
    got = pruning.score(_two_dense_inputs(kind), "synflow")
    _assert_close(got, want, rtol=1e-12)
    got32 = pruning.score(_two_dense_inputs(kind), "synflow",
                          precision="float32")
    _assert_close(got32, want, rtol=1e-5)


def _embedding_model(dtype="int32"):
  keras.utils.set_random_seed(5)
  tok = keras.Input((7,), dtype=dtype, name="tok")
  h = keras.layers.Flatten()(keras.layers.Embedding(20, 4, name="emb")(tok))
  return keras.Model(tok, keras.layers.Dense(3, name="o")(h))


def test_synflow_feeds_every_token_id_to_an_embedding():
  # The linearized lookup is onehot(all ids) @ |E|: every position gets
  # s = sum_v |E[v]|, so R = sum_{p,e,o} s_e |W[4p + e, o]|,
  # dR/dW[4p + e, o] = s_e and dR/dE[v, e] = sum_{p,o} |W[4p+e, o]| for
  # every row v (every row is on a path).
  m = _embedding_model()
  e = np.abs(m.get_layer("emb").embeddings.numpy().astype(np.float64))
  w = np.abs(m.get_layer("o").kernel.numpy().astype(np.float64))
  d_e = np.broadcast_to(w.sum(1).reshape(7, 4).sum(0), e.shape)
  want = {"o/kernel": w * np.tile(e.sum(0), 7)[:, None],
          "emb/embeddings": e * d_e}
  keys = [t.key for t in prunable_targets(m)]
  want = {k: want[k] for k in keys}
  for precision in ("float64", "float32"):
    got = pruning.score(_embedding_model(), "synflow", precision=precision)
    _assert_close(got, want, rtol=1e-6)
  result = pruning.prune(_embedding_model(), "synflow", 0.5, rounds=3)
  n = sum(int(np.prod(t.variable.shape)) for t in prunable_targets(m))
  assert result.masks.kept() == round(0.5 * n)


# --- Checks on nested data -----------------------------------------------------


def test_checks_pair_every_input_and_skip_what_does_not_apply():
  x, y = _two_io_data()
  bad = (x[0], x[1][:, :4])
  with pytest.raises(ValueError, match=r"shape \(4,\) \(batch \(16, 4\)\) "
                     r"for input 'vec' but the model expects \(5,\)"):
    pruning.prune(_two_io(), "sbp", 0.5, data=(bad, y), loss=LOSS)
  ds = tf.data.Dataset.from_tensor_slices(({"img": x[0], "vec": x[1]},
                                           {"cls": y[0], "reg": y[1]}))
  with pytest.raises(ValueError, match="single examples.*for input 'img'"):
    pruning.prune(_two_io("dict"), "sbp", 0.5, data=ds, loss=LOSS)
  # Token ids 0-255 in uint8 are not images: no warning; default-loss labels
  # of an integer-input model are still checked.
  tokens = np.random.default_rng(0).integers(0, 20, (8, 7)).astype("uint8")
  labels = np.arange(8) % 3
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    checks.check_data(_embedding_model("uint8"), (tokens, labels), None, 1)
  with pytest.raises(ValueError, match=r"Labels out of range: found 0\.\.4"):
    checks.check_data(_embedding_model(), (tokens, np.arange(8) % 5), None, 1)
