"""The public steps score / select / apply / diagnose, and method options,
on both Keras paths where a model is involved (the ``path`` fixture)."""

import numpy as np
import pytest

from sbp_tf import config as sbp_config
from sbp_tf import pruning
from sbp_tf.compat import keras, tf


def _cnn(path=None, seed=0):
  K = keras if path is None else path.keras
  K.utils.set_random_seed(seed)
  inp = K.Input((6, 6, 2))
  h = K.layers.Conv2D(4, 3, name="c1")(inp)
  h = K.layers.BatchNormalization(name="bn")(h)
  h = K.layers.Activation("relu")(h)
  h = K.layers.Flatten()(h)
  h = K.layers.Dense(12, activation="tanh", name="d1")(h)
  return K.Model(inp, K.layers.Dense(3, name="d2")(h))


def _data(n=10):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, 6, 6, 2)).astype(np.float32),
          rng.integers(0, 3, n).astype(np.int32))


def _weights(model):
  return [w.numpy().copy() for w in model.weights]


@pytest.mark.parametrize("method,rescale", [("sbp", False), ("grasp", True),
                                            ("magnitude", False),
                                            ("synflow", True)])
def test_steps_compose_to_prune_bit_for_bit(path, method, rescale):
  a, b = _cnn(path), _cnn(path)
  res = path.prune(a, method, 0.8, data=_data(), rescale=rescale,
                   rounds=1, on_collapse="ignore")
  scores = path.score(b, method, data=_data())
  masks = path.select(scores, 0.8)
  factors = path.apply(b, masks, rescale=rescale)
  assert list(masks) == list(res.masks)
  for k in masks:
    np.testing.assert_array_equal(masks[k], res.masks[k])
    np.testing.assert_array_equal(scores[k], res.scores[k])
  for wa, wb in zip(_weights(a), _weights(b)):
    np.testing.assert_array_equal(wa, wb)
  assert sorted(factors) == sorted(res.rescale_factors)


def test_score_leaves_every_variable_unchanged(path):
  m = _cnn(path)
  before = _weights(m)
  for method in ("sbp", "grasp", "synflow"):
    path.score(m, method, data=_data())
  for w0, w1 in zip(before, _weights(m)):
    np.testing.assert_array_equal(w0, w1)


def test_scores_carry_the_sign_convention(path):
  m = _cnn(path)
  s = path.score(m, "grasp", data=_data())
  assert s.keep == "smallest" and s.method == "grasp"
  imp = s.importance()
  for k in s:
    np.testing.assert_array_equal(imp[k], -s[k])
  # select keeps the smallest GraSP scores: the kept ones are all <= the
  # pruned ones (global threshold).
  masks = path.select(s, 0.5)
  kept = np.concatenate([s[k][masks[k] > 0] for k in s])
  pruned = np.concatenate([s[k][masks[k] == 0] for k in s])
  assert kept.max() <= pruned.min()
  # A plain mapping is read as importance (larger kept).
  plain = path.select(dict(s), 0.5)
  kept = np.concatenate([s[k][plain[k] > 0] for k in s])
  pruned = np.concatenate([s[k][plain[k] == 0] for k in s])
  assert kept.min() >= pruned.max()


def test_select_counts_scope_and_bad_input():
  scores = {"a": np.array([3., 1., 5., 0.]), "b": np.array([2., 4.])}
  m = pruning.select(scores, 0.5)
  assert isinstance(m, pruning.Masks) and m.kept() == 3
  np.testing.assert_array_equal(m["a"], [1, 0, 1, 0])
  np.testing.assert_array_equal(m["b"], [0, 1])
  lw = pruning.select(scores, 0.5, scope="layerwise")
  assert [int(lw[k].sum()) for k in lw] == [2, 1]
  with pytest.raises(ValueError, match="scope='per_unit' is not known"):
    pruning.select(scores, 0.5, scope="per_unit")
  with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\]"):
    pruning.select(scores, 1.5)


def test_apply_checks_masks_before_changing_anything(path):
  m = _cnn(path)
  before = _weights(m)
  bad = pruning.Masks({"nope/kernel": np.ones((2, 2), np.float32)})
  with pytest.raises(ValueError, match="nope/kernel"):
    path.apply(m, bad)
  for w0, w1 in zip(before, _weights(m)):
    np.testing.assert_array_equal(w0, w1)


def test_diagnose_takes_masks_and_optionally_scores(path):
  m = _cnn(path)
  s = path.score(m, "magnitude")
  masks = path.select(s, 0.5)
  d = path.diagnose(m, masks)
  assert d["collapsed"] == [] and d["connected"] is True
  assert "critical_sparsity" not in d
  d = path.diagnose(m, masks, s)
  crit = pruning.critical_sparsity(s)
  assert d["critical_sparsity"] == crit.sparsity
  dead = pruning.Masks({k: np.zeros_like(v) if k == "d1/kernel" else v
                        for k, v in masks.items()})
  d = path.diagnose(m, dead)
  assert d["collapsed"] == ["d1/kernel"] and d["connected"] is False


def _grasp_reference(path, model, x, y, temperature):
  """``-W * (H g)`` by nested tapes, independently of sbp_tf's saliency."""
  kernels = [t.variable for t in path.targets(model)]
  ce = path.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  # The fused batch-norm op's second derivative is inexact (~1%): unfused.
  bns = [l for l in model.layers if getattr(l, "fused", None)]
  for layer in bns:
    layer.fused = False
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      loss = ce(y, model(x, training=True) / temperature)
    g = inner.gradient(loss, kernels)
    gz = tf.add_n([tf.reduce_sum(gi * tf.stop_gradient(gi)) for gi in g])
  hg = outer.gradient(gz, kernels)
  for layer in bns:
    layer.fused = True
  return {t.key: -t.variable.numpy().astype(np.float64) * h.numpy()
          for t, h in zip(path.targets(model), hg)}


def test_grasp_temperature_option_reaches_the_score(path):
  m = _cnn(path)
  x, y = _data()
  for temp in (200.0, 5.0):
    got = path.score(m, "grasp", data=(x, y), temperature=temp)
    want = _grasp_reference(path, m, x, y, temp)
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-4,
                                 atol=1e-6 * np.abs(want[k]).max())
  assert pruning.method_options("grasp") == {"temperature": 200.0}
  with pytest.raises(ValueError, match="temperature must be a number > 0"):
    path.score(m, "grasp", data=(x, y), temperature=0.0)


def test_synflow_precision_option(path):
  m = _cnn(path)
  f64 = path.score(m, "synflow")
  f32 = path.score(m, "synflow", precision="float32")
  for k in f64:
    np.testing.assert_allclose(f32[k], f64[k], rtol=1e-4,
                               atol=1e-9 * f64[k].max())
  with pytest.raises(ValueError, match="precision='float16' is not known"):
    path.score(m, "synflow", precision="float16")


def test_unknown_option_is_named_with_the_valid_ones(path):
  with pytest.raises(ValueError, match=r"Unknown option\(s\) \['temprature'\] "
                     r"for pruning method 'grasp'.*\['temperature'\]"):
    path.prune(_cnn(path), "grasp", 0.5, data=_data(), temprature=3.0)
  with pytest.raises(ValueError, match="no options"):
    path.score(_cnn(path), "magnitude", beta=1.0)
  with pytest.raises(ValueError, match="instance"):
    path.score(_cnn(path), pruning.scores.GraSP(), data=_data(),
               temperature=3.0)


# --- A new method with one option: one new class, nothing else edited. ---

@pytest.fixture(scope="module")
def power_method():
  @pruning.register_method("test_power")
  class Power(pruning.Method):  # pylint: disable=unused-variable
    """``|W|^p``: with p > 0 the same ranking as magnitude."""

    def __init__(self, p: float = 1.0):
      self.p = p

    def score(self, ctx):
      return {k: np.abs(w) ** self.p for k, w in ctx.weights().items()}
  yield "test_power"
  pruning.scores._REGISTRY.pop("test_power")  # pylint: disable=protected-access


def test_new_method_option_through_prune_and_config(path, power_method):
  m = _cnn(path)
  s = path.score(m, power_method, p=2.0)
  for t in path.targets(m):
    np.testing.assert_allclose(s[t.key], np.abs(t.variable.numpy()) ** 2)
  res = path.prune(_cnn(path), power_method, 0.7, p=3.0)
  ref = path.prune(_cnn(path), "magnitude", 0.7)
  for k in ref.masks:
    np.testing.assert_array_equal(res.masks[k], ref.masks[k])
  # The config schema grows the option by itself and validates it.
  cfg = sbp_config.defaults()
  assert "p" in cfg.prune.options
  cfg.prune.method = power_method
  cfg.prune.options.p = 2.0
  sbp_config.validate(cfg)
  cfg.prune.method = "sbp"
  with pytest.raises(ValueError, match=r"prune\.options\.p=2\.0 is not an "
                     "option of pruning method 'sbp'"):
    sbp_config.validate(cfg)


def test_pruning_models_in_a_loop_warns_no_retracing():
  import logging  # pylint: disable=g-import-not-at-top
  seen = []

  class Keep(logging.Handler):
    def emit(self, record):
      seen.append(record.getMessage())
  handler = Keep()
  tf.get_logger().addHandler(handler)
  try:
    x, y = _data()
    for i in range(7):
      m = _cnn(seed=i)
      pruning.prune(m, "sbp", 0.5, data=(x, y))
      pruning.prune(m, "synflow", 0.5, rounds=2)

    @tf.function
    def other(v):  # another function retraced in a loop still warns
      return v * 2
    for n in range(7):
      other(tf.zeros([n + 1]))
  finally:
    tf.get_logger().removeHandler(handler)
  ours = [s for s in seen if "retracing" in s and "other" not in s]
  assert not ours, ours[0]
  assert any("retracing" in s and "other" in s for s in seen)
