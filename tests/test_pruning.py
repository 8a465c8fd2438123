"""prune(): exact counts, scopes, determinism, state restoration, bad input,
on both Keras paths (the ``path`` fixture: once on tf_keras, once on Keras 3).
"""

import numpy as np
import pytest

from sbp_tf.compat import tf


def _cnn(path, seed=0, bn=True):
  K = path.keras
  K.utils.set_random_seed(seed)
  inp = K.Input((6, 6, 2))
  h = K.layers.Conv2D(4, 3, name="c1")(inp)
  if bn:
    h = K.layers.BatchNormalization(name="bn")(h)
  h = K.layers.Activation("relu")(h)
  h = K.layers.Flatten()(h)
  h = K.layers.Dense(12, activation="tanh", name="d1")(h)
  out = K.layers.Dense(3, name="d2")(h)
  return K.Model(inp, out)


def _data(n=10):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, 6, 6, 2)).astype(np.float32),
          rng.integers(0, 3, n).astype(np.int32))


def _sizes(path, model):
  return {t.key: int(np.prod(t.variable.shape))
          for t in path.targets(model)}


@pytest.mark.parametrize("method", ["sbp", "grasp", "magnitude", "random"])
@pytest.mark.parametrize("sparsity", [0.0, 0.37, 0.9])
def test_exact_kept_count_global(path, method, sparsity):
  m = _cnn(path)
  n = sum(_sizes(path, m).values())
  res = path.prune(m, method, sparsity, data=_data(), seed=0,
                   on_collapse="ignore")
  assert res.masks.kept() == round((1 - sparsity) * n)
  zeros = sum(int(np.sum(t.variable.numpy() == 0))
              for t in path.targets(m))
  assert zeros == n - res.masks.kept()


def test_layerwise_and_keep_first_last(path):
  m = _cnn(path)
  sizes = _sizes(path, m)
  res = path.prune(m, "magnitude", 0.75, scope="layerwise")
  for k, n in sizes.items():
    assert int(res.masks[k].sum()) == round(0.25 * n), k
  m = _cnn(path)
  res = path.prune(m, "magnitude", 0.75, keep_first=True, keep_last=True)
  assert res.masks["c1/kernel"].all() and res.masks["d2/kernel"].all()
  assert res.masks.kept() == round(0.25 * sum(sizes.values()))
  with pytest.raises(ValueError, match="keep_first/keep_last"):
    path.prune(_cnn(path), "magnitude", 0.99, keep_first=True,
               keep_last=True)


def test_ties_broken_by_position(path):
  K = path.keras
  K.utils.set_random_seed(0)
  m = K.Sequential([K.Input((5,)), K.layers.Dense(4, name="a"),
                    K.layers.Dense(2, name="b")])
  m.set_weights([np.ones((5, 4)), np.zeros(4), np.ones((4, 2)), np.zeros(2)])
  res = path.prune(m, "magnitude", 0.5)  # 28 equal scores, keep 14
  flat = np.concatenate([res.masks["a/kernel"].ravel(),
                         res.masks["b/kernel"].ravel()])
  np.testing.assert_array_equal(flat, np.r_[np.ones(14), np.zeros(14)])


def test_deterministic_and_state_restored(path):
  x, y = _data()
  m1, m2 = _cnn(path), _cnn(path)
  bn_before = [w.copy() for w in m1.get_layer("bn").get_weights()]
  bias_before = m1.get_layer("d1").bias.numpy().copy()
  r1 = path.prune(m1, "sbp", 0.8, data=(x, y))
  r2 = path.prune(m2, "sbp", 0.8, data=(x, y))
  for k in r1.masks:
    np.testing.assert_array_equal(r1.masks[k], r2.masks[k])
    np.testing.assert_array_equal(r1.scores[k], r2.scores[k])
  # training-mode BN moved its statistics while scoring; prune restores them.
  for a, b in zip(m1.get_layer("bn").get_weights(), bn_before):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(m1.get_layer("d1").bias.numpy(), bias_before)


def test_snapshot_is_independent_of_later_writes(path):
  from sbp_tf.pruning import state  # pylint: disable=g-import-not-at-top
  K = path.keras
  m = _cnn(path)
  x, y = _data()
  before = [w.copy() for w in m.get_weights()]
  snap = state.snapshot(m)
  # Writes to the variables of every kind must not reach the snapshot ...
  m.compile(K.optimizers.SGD(0.5), K.losses.SparseCategoricalCrossentropy(
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


def test_iterative_rounds_follow_exponential_schedule(path):
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  assert pruning.exponential_schedule(0.01, 2) == pytest.approx([0.1, 0.01])
  m = _cnn(path)
  n = sum(_sizes(path, m).values())
  res = path.prune(m, "sbp", 0.9, data=_data(), rounds=3)
  assert res.rounds == 3 and res.masks.kept() == round(0.1 * n)
  # The last round scored the pruned network: pruned weights score 0.
  for k, s in res.scores.items():
    assert np.all(s[res.masks[k] == 0] <= s[res.masks[k] == 1].min())


def test_dataset_input_and_report(path):
  x, y = _data()
  ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(10))).batch(4)
  res = path.prune(_cnn(path), "sbp", 0.5, data=ds, num_batches=2)
  rows = res.report
  assert [r["layer"] for r in rows] == ["c1/kernel", "d1/kernel", "d2/kernel"]
  assert sum(r["kept"] for r in rows) == res.masks.kept()
  assert "| **total** |" in rows.to_markdown()


def test_keras_applications_model(path):
  m = path.keras.applications.MobileNetV2(
      input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4,
      classifier_activation=None)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
  y = np.arange(4) % 4
  n = sum(_sizes(path, m).values())
  res = path.prune(m, "sbp", 0.8, data=(x, y), on_collapse="ignore")
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
def test_bad_arguments_raise_and_leave_model_unchanged(path, kwargs, match):
  m = _cnn(path)
  before = m.get_weights()
  kwargs = dict(kwargs)
  kwargs.setdefault("data", _data())
  with pytest.raises(ValueError, match=match):
    path.prune(m, kwargs.pop("method"), kwargs.pop("sparsity"), **kwargs)
  assert _weights_equal(m, before)


def test_bad_data_found_while_scoring_leaves_model_unchanged(path):
  m = _cnn(path)
  before = m.get_weights()
  x, y = _data()
  empty = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).take(0)
  with pytest.raises(ValueError, match="empty"):
    path.prune(m, "sbp", 0.5, data=empty)
  assert _weights_equal(m, before)
  unlabeled = tf.data.Dataset.from_tensor_slices(x).batch(4)
  with pytest.raises(ValueError, match="without labels"):
    path.prune(m, "sbp", 0.5, data=unlabeled)
  x[0, 0, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN/inf scores"):
    path.prune(m, "sbp", 0.5, data=(x, y), rounds=2)
  assert _weights_equal(m, before)
  with pytest.raises(ValueError, match="one-hot"):  # labels for sparse CE
    path.prune(m, "sbp", 0.5, data=(x, np.eye(3)[y]))
  assert _weights_equal(m, before)


def test_unbuilt_unprunable_and_other_keras_models(path):
  K = path.keras
  with pytest.raises(ValueError, match="not built"):
    path.prune(K.Sequential([K.layers.Dense(3)]), "magnitude", 0.5)
  flat = K.Sequential([K.Input((4, 4)), K.layers.Flatten()])
  with pytest.raises(ValueError, match="no prunable weights"):
    path.prune(flat, "magnitude", 0.5)
  with pytest.raises(TypeError, match="keras.Model"):
    path.prune("model", "magnitude", 0.5)
  # A model of the other Keras is refused, naming the path that takes it.
  other = path.other_keras
  inp = other.Input((4,))
  model = other.Model(inp, other.layers.Dense(2)(inp))
  right = "Keras 3 model" if path.name == "tf_keras" else "sbp_tf.pruning.prune"
  with pytest.raises(TypeError, match=right):
    path.prune(model, "magnitude", 0.5)


def test_collapse_error_leaves_the_model_unchanged(path):
  K = path.keras
  inp = K.Input((5,))
  model = K.Model(inp, K.layers.Dense(3, use_bias=False, name="d")(inp))
  before = model.get_weights()
  with pytest.raises(ValueError, match="fully pruned"):
    path.prune(model, "magnitude", 0.99, on_collapse="error")
  assert _weights_equal(model, before)
  assert np.count_nonzero(model.get_layer("d").kernel.numpy()) == 15


def test_prune_keeps_exact_count_and_restores_everything_else(path):
  # A zoo ResNet with batch norm: only the pruned kernels change, the
  # report lists every target, and the diagnostics are filled in.
  model = path.models.build("resnet_cifar", 10, (8, 8, 3), depth=8,
                            width_multiplier=0.25, seed=0)
  rng = np.random.default_rng(0)
  data = (rng.normal(size=(16, 8, 8, 3)).astype("float32"), np.arange(16) % 10)
  before = [v.numpy() for v in model.weights]
  result = path.prune(model, "sbp", 0.8, data=data)
  n = result.masks.size()
  assert result.masks.kept() == round(0.2 * n)
  assert result.report.total_kept == result.masks.kept()
  targets = path.targets(model)
  assert [r["layer"] for r in result.report] == [t.key for t in targets]
  kernels = {id(t.variable): t.key for t in targets}
  assert len(kernels) == len(targets)
  for v, b in zip(model.weights, before):  # BN statistics etc. bit-identical
    if id(v) in kernels:
      np.testing.assert_array_equal(v.numpy(), b * result.masks[kernels[id(v)]])
    else:
      np.testing.assert_array_equal(v.numpy(), b)
  assert sum(id(v) in kernels for v in model.weights) == len(targets)
  assert result.diagnostics["connected"] is True
  assert 0.8 < result.diagnostics["critical_sparsity"] < 1.0
