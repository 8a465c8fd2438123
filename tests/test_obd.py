"""OBD (``0.5 * H_ii * W_i^2``) against a Hessian diagonal computed here.

The reference ``H`` is the full float64 Hessian of the same network written
out in TensorFlow ops in this file (a jacobian of its gradient), not the
library's saliency code; the library's exact diagonal must match it to
float32 round-off, and the Hutchinson estimate must sit within its own
error bars: weight ``i``'s estimate over ``K`` Rademacher probes has
standard deviation ``sqrt(sum_{j != i} H_ij^2 / K)``.
"""

import keras as keras3_module
import numpy as np
import pytest

from sbp_tf import keras3, pruning
from sbp_tf.compat import keras as keras2_module
from sbp_tf.compat import tf
from sbp_tf.pruning import obd

KITS = ("tf_keras", "keras3")


def _keras(kit):
  return keras2_module if kit == "tf_keras" else keras3_module


def _score(kit):
  return keras3.score if kit == "keras3" else pruning.score


def _prune(kit):
  return keras3.prune if kit == "keras3" else pruning.prune


def _mlp(K):
  K.utils.set_random_seed(0)  # fixed weights: the measured numbers hold
  inp = K.Input((6,))
  h = K.layers.Dense(5, activation="tanh", name="d1")(inp)
  return K.Model(inp, K.layers.Dense(3, name="d2")(h))


def _data(n=16, d=6, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)).astype("float32"),
          rng.integers(0, classes, n))


def _hessian_mlp(model, x, y):
  """Full float64 Hessian of mean CE over the two kernels (flattened, d1
  then d2): the network written out here."""
  k1, b1, k2, b2 = [tf.Variable(w.astype(np.float64))
                    for w in model.get_weights()]
  with tf.GradientTape(persistent=True) as outer:
    with tf.GradientTape() as inner:
      z = tf.tanh(x.astype(np.float64) @ k1 + b1) @ k2 + b2
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=y, logits=z))
    g = tf.concat([tf.reshape(a, [-1]) for a in inner.gradient(loss, [k1, k2])],
                  0)
  jac = outer.jacobian(g, [k1, k2])
  return np.concatenate([j.numpy().reshape(g.shape[0], -1) for j in jac], 1)


def _diag_from_scores(model, scores):
  """``H_ii = 2 s_i / w_i^2`` back from OBD scores, d1 then d2."""
  return np.concatenate([
      (2.0 * scores[k] / np.square(np.asarray(
          model.get_layer(k.split("/")[0]).kernel, np.float64))).ravel()
      for k in ("d1/kernel", "d2/kernel")])


@pytest.mark.parametrize("kit", KITS)
def test_exact_diagonal_matches_the_float64_hessian(kit):
  model = _mlp(_keras(kit))
  x, y = _data()
  h = _hessian_mlp(model, x, y)
  s = _score(kit)(model, "obd", data=(x, y), diagonal="exact")
  assert s.keep == "largest"
  got = _diag_from_scores(model, s)
  # float32 network vs float64: round-off only (measured 3.4e-8 of max 0.44).
  np.testing.assert_allclose(got, np.diag(h), rtol=0,
                             atol=1e-6 * np.abs(np.diag(h)).max())
  # 'auto' is exact at this size (45 weights <= EXACT_LIMIT): same scores.
  auto = _score(kit)(model, "obd", data=(x, y))
  for k in s:
    np.testing.assert_array_equal(auto[k], s[k])
  assert np.any(np.diag(h) < 0)  # at init some H_ii < 0: signed scores


def test_hutchinson_is_within_its_error_bars():
  model = _mlp(keras2_module)
  x, y = _data()
  h = _hessian_mlp(model, x, y)
  d = np.diag(h)
  probes = 64
  sigma = np.sqrt(((h ** 2).sum(1) - d ** 2) / probes)
  z = np.concatenate([
      (_diag_from_scores(model, pruning.score(
          model, "obd", data=(x, y), diagonal="hutchinson", probes=probes,
          seed=seed)) - d) / sigma for seed in range(4)])
  # 180 standardized errors: measured max |z| 3.65, mean z^2 1.02 (per seed
  # 0.84-1.29), mean z 0.043; a bias of 1 sigma would give mean z^2 ~ 2.
  assert np.abs(z).max() < 5.0
  assert 0.7 < np.mean(z ** 2) < 1.35
  assert abs(np.mean(z)) < 0.35  # unbiased: E[z] = 0 (std of mean ~0.075)
  # Same seed, same probes, same scores; another seed, other probes.
  a = pruning.score(model, "obd", data=(x, y), diagonal="hutchinson", seed=1)
  b = pruning.score(model, "obd", data=(x, y), diagonal="hutchinson", seed=1)
  c = pruning.score(model, "obd", data=(x, y), diagonal="hutchinson", seed=2)
  np.testing.assert_array_equal(a["d1/kernel"], b["d1/kernel"])
  assert not np.array_equal(a["d1/kernel"], c["d1/kernel"])


def test_options_are_checked():
  model = _mlp(keras2_module)
  x, y = _data()
  with pytest.raises(ValueError, match="diagonal='bogus'.*Fix"):
    pruning.prune(model, "obd", 0.5, data=(x, y), diagonal="bogus")
  with pytest.raises(ValueError, match="probes must be an integer >= 1.*Fix"):
    pruning.prune(model, "obd", 0.5, data=(x, y), probes=0)
  with pytest.raises(ValueError, match="data-driven"):
    pruning.prune(model, "obd", 0.5)
  assert pruning.method_options("obd") == {"diagonal": "auto", "probes": 32}


def _zoo_resnet(kit):
  from sbp_tf import models  # pylint: disable=import-outside-toplevel
  if kit == "keras3":
    return keras3.models.build("resnet_cifar", 10, (16, 16, 3), depth=8,
                               width_multiplier=0.125)
  return models.build("resnet_cifar", 10, (16, 16, 3), depth=8,
                      width_multiplier=0.125)


def _mobilenet(kit):
  return _keras(kit).applications.MobileNetV2(
      input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)


@pytest.mark.parametrize("kit", KITS)
@pytest.mark.parametrize("build,shape", [
    (_zoo_resnet, (16, 16, 3)),
    pytest.param(_mobilenet, (32, 32, 3), marks=pytest.mark.slow)],
                         ids=["resnet_cifar", "mobilenet_v2"])
def test_prunes_the_zoo_and_an_applications_cnn(kit, build, shape):
  model = build(kit)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8,) + shape).astype("float32")
  y = rng.integers(0, 10, 8)
  opts = dict(diagonal="hutchinson", probes=2, seed=3)
  scores = _score(kit)(model, "obd", data=(x, y), **opts)
  result = _prune(kit)(model, "obd", 0.9, data=(x, y), on_collapse="ignore",
                       **opts)
  n = result.masks.size()
  assert result.method == "obd" and result.masks.kept() == round(0.1 * n)
  # The prune keeps exactly the top of the scores computed on their own.
  expect = pruning.select(scores, 0.9)
  for k in expect:
    np.testing.assert_array_equal(result.masks[k], expect[k])
  flat = np.concatenate([v.ravel() for v in scores.values()])
  assert np.all(np.isfinite(flat)) and np.count_nonzero(flat) > 0.9 * n
  targets = (keras3.prunable_targets if kit == "keras3"
             else pruning.prunable_targets)(model)
  assert n > obd.EXACT_LIMIT and obd.OBD().resolved_diagonal(
      pruning.ScoreContext(model=model, targets=targets)) == "hutchinson"
