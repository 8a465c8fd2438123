"""prune(): exact counts, scopes, determinism, state restoration, bad input."""

import numpy as np
import pytest

from sbp_tf import pruning
from sbp_tf.compat import keras, tf


def _cnn(seed=0, bn=True):
  keras.utils.set_random_seed(seed)
  inp = keras.Input((6, 6, 2))
  h = keras.layers.Conv2D(4, 3, name="c1")(inp)
  if bn:
    h = keras.layers.BatchNormalization(name="bn")(h)
  h = keras.layers.Activation("relu")(h)
  h = keras.layers.Flatten()(h)
  h = keras.layers.Dense(12, activation="tanh", name="d1")(h)
  out = keras.layers.Dense(3, name="d2")(h)
  return keras.Model(inp, out)


def _data(n=10):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, 6, 6, 2)).astype(np.float32),
          rng.integers(0, 3, n).astype(np.int32))


def _sizes(model):
  return {t.key: int(np.prod(t.variable.shape))
          for t in pruning.prunable_targets(model)}


@pytest.mark.parametrize("method", ["sbp", "grasp", "magnitude", "random"])
@pytest.mark.parametrize("sparsity", [0.0, 0.37, 0.9])
def test_exact_kept_count_global(method, sparsity):
  m = _cnn()
  n = sum(_sizes(m).values())
  res = pruning.prune(m, method, sparsity, data=_data(), seed=0,
                      on_collapse="ignore")
  assert res.masks.kept() == round((1 - sparsity) * n)
  zeros = sum(int(np.sum(t.variable.numpy() == 0))
              for t in pruning.prunable_targets(m))
  assert zeros == n - res.masks.kept()


def test_layerwise_and_keep_first_last():
  m = _cnn()
  sizes = _sizes(m)
  res = pruning.prune(m, "magnitude", 0.75, scope="layerwise")
  for k, n in sizes.items():
    assert int(res.masks[k].sum()) == round(0.25 * n), k
  m = _cnn()
  res = pruning.prune(m, "magnitude", 0.75, keep_first=True, keep_last=True)
  assert res.masks["c1/kernel"].all() and res.masks["d2/kernel"].all()
  assert res.masks.kept() == round(0.25 * sum(sizes.values()))
  with pytest.raises(ValueError, match="keep_first/keep_last"):
    pruning.prune(_cnn(), "magnitude", 0.99, keep_first=True, keep_last=True)


def test_ties_broken_by_position():
  keras.utils.set_random_seed(0)
  m = keras.Sequential([keras.layers.Dense(4, input_shape=(5,), name="a"),
                        keras.layers.Dense(2, name="b")])
  m.set_weights([np.ones((5, 4)), np.zeros(4), np.ones((4, 2)), np.zeros(2)])
  res = pruning.prune(m, "magnitude", 0.5)  # 28 equal scores, keep 14
  flat = np.concatenate([res.masks["a/kernel"].ravel(),
                         res.masks["b/kernel"].ravel()])
  np.testing.assert_array_equal(flat, np.r_[np.ones(14), np.zeros(14)])


def test_deterministic_and_state_restored():
  x, y = _data()
  m1, m2 = _cnn(), _cnn()
  bn_before = [w.copy() for w in m1.get_layer("bn").get_weights()]
  bias_before = m1.get_layer("d1").bias.numpy().copy()
  r1 = pruning.prune(m1, "sbp", 0.8, data=(x, y))
  r2 = pruning.prune(m2, "sbp", 0.8, data=(x, y))
  for k in r1.masks:
    np.testing.assert_array_equal(r1.masks[k], r2.masks[k])
    np.testing.assert_array_equal(r1.scores[k], r2.scores[k])
  # training-mode BN moved its statistics while scoring; prune restores them.
  for a, b in zip(m1.get_layer("bn").get_weights(), bn_before):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(m1.get_layer("d1").bias.numpy(), bias_before)


def test_snapshot_is_independent_of_later_writes():
  from sbp_tf.pruning import state  # pylint: disable=g-import-not-at-top
  m = _cnn()
  x, y = _data()
  before = [w.copy() for w in m.get_weights()]
  snap = state.snapshot(m)
  # Writes to the variables of every kind must not reach the snapshot ...
  m.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  m.train_on_batch(x, y)  # in-place optimizer updates, BN statistics
  k = m.get_layer("c1").kernel
  k.assign_add(tf.ones_like(k))
  m.get_layer("d1").bias.assign(tf.fill(m.get_layer("d1").bias.shape, 7.0))
  assert not np.array_equal(m.get_weights()[0], before[0])
  for (_, value), b in zip(snap[:len(before)], before):
    np.testing.assert_array_equal(value, b)
  # ... nor writes to the snapshot reach the variables.
  snap[0][1][...] = 3.0
  assert not np.any(k.numpy() == 3.0)
  snap[0] = (snap[0][0], before[0])
  state.restore(snap)
  for a, b in zip(m.get_weights(), before):
    np.testing.assert_array_equal(a, b)


def test_iterative_rounds_follow_exponential_schedule():
  assert pruning.exponential_schedule(0.01, 2) == pytest.approx([0.1, 0.01])
  m = _cnn()
  n = sum(_sizes(m).values())
  res = pruning.prune(m, "sbp", 0.9, data=_data(), rounds=3)
  assert res.rounds == 3 and res.masks.kept() == round(0.1 * n)
  # The last round scored the pruned network: pruned weights score 0.
  for k, s in res.scores.items():
    assert np.all(s[res.masks[k] == 0] <= s[res.masks[k] == 1].min())


def test_dataset_input_and_report():
  x, y = _data()
  ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(10))).batch(4)
  res = pruning.prune(_cnn(), "sbp", 0.5, data=ds, num_batches=2)
  rows = res.report
  assert [r["layer"] for r in rows] == ["c1/kernel", "d1/kernel", "d2/kernel"]
  assert sum(r["kept"] for r in rows) == res.masks.kept()
  assert "| **total** |" in rows.to_markdown()


def test_keras_applications_model():
  m = keras.applications.MobileNetV2(
      input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4,
      classifier_activation=None)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
  y = np.arange(4) % 4
  n = sum(_sizes(m).values())
  res = pruning.prune(m, "sbp", 0.8, data=(x, y), on_collapse="ignore")
  assert res.masks.kept() == round(0.2 * n)
  assert any(k.endswith("depthwise_kernel") for k in res.masks)
  # Diagnostics agree with each other: collapse iff above critical sparsity;
  # a collapsed classifier head disconnects the outputs.
  d = res.diagnostics
  assert bool(d["collapsed"]) == (0.8 > d["critical_sparsity"])
  head = "predictions/kernel"
  assert d["connected"] == (res.masks[head].sum(0) > 0).all()


def _weights_equal(m, before):
  return all(np.array_equal(a, b) for a, b in zip(m.get_weights(), before))


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="sbp", sparsity=1.0), r"\[0, 1\)"),
    (dict(method="sbp", sparsity=-0.1), r"\[0, 1\)"),
    (dict(method="sbp", sparsity=float("nan")), r"\[0, 1\)"),
    (dict(method="nope", sparsity=0.5), "grasp, magnitude"),
    (dict(method="sbp", sparsity=0.5, data=None), "data-driven"),
    (dict(method="grasp", sparsity=0.5, data=(np.zeros((2, 6, 6, 2)),)),
     "labels"),
    (dict(method="sbp", sparsity=0.5, scope="local"), "scope"),
    (dict(method="sbp", sparsity=0.5, on_collapse="raise"), "on_collapse"),
    (dict(method="sbp", sparsity=0.5, rescale="kernel"), "rescale"),
    (dict(method="sbp", sparsity=0.5, rounds=0), "rounds"),
    (dict(method="sbp", sparsity=0.5, num_batches=0), "num_batches"),
])
def test_bad_arguments_raise_and_leave_model_unchanged(kwargs, match):
  m = _cnn()
  before = m.get_weights()
  kwargs.setdefault("data", _data())
  with pytest.raises(ValueError, match=match):
    pruning.prune(m, kwargs.pop("method"), kwargs.pop("sparsity"), **kwargs)
  assert _weights_equal(m, before)


def test_bad_data_found_while_scoring_leaves_model_unchanged():
  m = _cnn()
  before = m.get_weights()
  x, y = _data()
  empty = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).take(0)
  with pytest.raises(ValueError, match="empty"):
    pruning.prune(m, "sbp", 0.5, data=empty)
  assert _weights_equal(m, before)
  unlabeled = tf.data.Dataset.from_tensor_slices(x).batch(4)
  with pytest.raises(ValueError, match="without labels"):
    pruning.prune(m, "sbp", 0.5, data=unlabeled)
  x[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN/inf scores"):
    pruning.prune(m, "sbp", 0.5, data=(x, y), rounds=2)
  assert _weights_equal(m, before)


def test_unbuilt_and_unprunable_models():
  with pytest.raises(ValueError, match="not built"):
    pruning.prune(keras.Sequential([keras.layers.Dense(3)]), "magnitude", 0.5)
  flat = keras.Sequential([keras.layers.Flatten(input_shape=(4, 4))])
  with pytest.raises(ValueError, match="no prunable weights"):
    pruning.prune(flat, "magnitude", 0.5)
  with pytest.raises(TypeError, match="keras.Model"):
    pruning.prune("model", "magnitude", 0.5)
