"""Each score method against an independent NumPy computation on a tiny net,
on both Keras paths (the ``path`` fixture: once on tf_keras, once on Keras 3).
"""

import warnings

import numpy as np
import pytest

from sbp_tf import pruning
from sbp_tf.compat import tf
from sbp_tf.pruning import state as state_lib

D, H, C, B = 6, 5, 3, 8


def _model(path, seed=0):
  K = path.keras
  K.utils.set_random_seed(seed)
  return K.Sequential([
      K.Input((D,)),
      K.layers.Dense(H, activation="tanh", name="d1",
                     bias_initializer="random_normal"),
      K.layers.Dense(C, name="d2", bias_initializer="random_normal")])


def _data():
  rng = np.random.default_rng(1)
  return (rng.normal(size=(B, D)).astype(np.float32),
          rng.integers(0, C, size=B).astype(np.int32))


def _np_params(m):
  w1, b1, w2, b2 = [w.astype(np.float64) for w in m.get_weights()]
  return w1, b1, w2, b2


def _np_grad(w1, b1, w2, b2, x, y, t=1.0):
  """Gradient of mean CE(softmax(logits / t)) w.r.t. (w1, w2)."""
  x = x.astype(np.float64)
  a1 = np.tanh(x @ w1 + b1)
  z2 = (a1 @ w2 + b2) / t
  p = np.exp(z2 - z2.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  dz2 = (p - np.eye(C)[y]) / (len(y) * t)
  dw2 = a1.T @ dz2
  dz1 = (dz2 @ w2.T) * (1 - a1 ** 2)
  return x.T @ dz1, dw2


def _topk(scores, density, keep="largest"):
  cat = np.concatenate([s.ravel() for s in scores])
  cat = cat if keep == "largest" else -cat
  k = int(round(density * cat.size))
  mask = np.zeros(cat.size)
  mask[np.argsort(-cat, kind="stable")[:k]] = 1
  out, i = [], 0
  for s in scores:
    out.append(mask[i:i + s.size].reshape(s.shape))
    i += s.size
  return out


def test_sbp_matches_numpy_and_snip_alias(path):
  m = _model(path)
  w1, b1, w2, b2 = _np_params(m)
  x, y = _data()
  g1, g2 = _np_grad(w1, b1, w2, b2, x, y)
  want = [np.abs(w1 * g1), np.abs(w2 * g2)]
  res = path.prune(m, "sbp", 0.6, data=(x, y))
  np.testing.assert_allclose(res.scores["d1/kernel"], want[0], rtol=1e-4,
                             atol=1e-9)
  np.testing.assert_allclose(res.scores["d2/kernel"], want[1], rtol=1e-4,
                             atol=1e-9)
  wm = _topk(want, 0.4)
  np.testing.assert_array_equal(res.masks["d1/kernel"], wm[0])
  np.testing.assert_array_equal(res.masks["d2/kernel"], wm[1])
  # In place: pruned weights are zero, kept ones unchanged, biases untouched.
  np.testing.assert_array_equal(m.get_weights()[0], (w1 * wm[0]).astype("f4"))
  np.testing.assert_array_equal(m.get_weights()[1], b1.astype("f4"))
  m2 = _model(path)
  res2 = path.prune(m2, "snip", 0.6, data=(x, y))
  np.testing.assert_array_equal(res2.masks["d1/kernel"], res.masks["d1/kernel"])


def test_sbp_sums_gradients_over_batches(path):
  m = _model(path)
  w1, b1, w2, b2 = _np_params(m)
  x, y = _data()
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)  # 3, 3, 2
  g = [np.zeros_like(w1), np.zeros_like(w2)]
  for s in (slice(0, 3), slice(3, 6)):
    gb = _np_grad(w1, b1, w2, b2, x[s], y[s])
    g = [g[0] + gb[0], g[1] + gb[1]]
  res = path.prune(m, "sbp", 0.5, data=ds, num_batches=2)
  np.testing.assert_allclose(res.scores["d1/kernel"], np.abs(w1 * g[0]),
                             rtol=1e-4, atol=1e-9)


def test_magnitude_and_random(path):
  m = _model(path)
  w1, _, w2, _ = _np_params(m)
  assert np.array_equal(path.score(m, "magnitude")["d1/kernel"], np.abs(w1))
  res = path.prune(m, "magnitude", 0.7)
  wm = _topk([np.abs(w1), np.abs(w2)], 0.3)
  np.testing.assert_array_equal(res.masks["d1/kernel"], wm[0])
  # random: numpy's generator seeded [seed, 0], drawn kernel after kernel.
  rng = np.random.default_rng([7, 0])
  rand = path.score(_model(path), "random", seed=7)
  np.testing.assert_array_equal(rand["d1/kernel"], rng.random((D, H)))
  np.testing.assert_array_equal(rand["d2/kernel"], rng.random((H, C)))
  r1 = path.prune(_model(path), "random", 0.7, seed=3).masks
  r2 = path.prune(_model(path), "random", 0.7, seed=3).masks
  r3 = path.prune(_model(path), "random", 0.7, seed=4).masks
  assert all(np.array_equal(r1[k], r2[k]) for k in r1)
  assert not all(np.array_equal(r1[k], r3[k]) for k in r1)
  assert r1.kept() == round(0.3 * (D * H + H * C))


def test_grasp_matches_finite_difference_hessian_gradient(path):
  m = _model(path)
  w1, b1, w2, b2 = _np_params(m)
  x, y = _data()
  t = 200.0
  g = _np_grad(w1, b1, w2, b2, x, y, t)
  eps = 1e-3 / max(np.abs(g[0]).max(), np.abs(g[1]).max())
  gp = _np_grad(w1 + eps * g[0], b1, w2 + eps * g[1], b2, x, y, t)
  gm = _np_grad(w1 - eps * g[0], b1, w2 - eps * g[1], b2, x, y, t)
  hg = [(a - b) / (2 * eps) for a, b in zip(gp, gm)]
  want = [-w1 * hg[0], -w2 * hg[1]]
  res = path.prune(m, "grasp", 0.5, data=(x, y))
  assert res.scores.keep == "smallest"
  scale = max(np.abs(want[0]).max(), np.abs(want[1]).max())
  np.testing.assert_allclose(res.scores["d1/kernel"], want[0], atol=2e-3 * scale)
  np.testing.assert_allclose(res.scores["d2/kernel"], want[1], atol=2e-3 * scale)
  # GraSP removes the highest scores: every kept score <= every removed one.
  s = np.concatenate([res.scores[k].ravel() for k in res.masks])
  keep = np.concatenate([res.masks[k].ravel() for k in res.masks]) > 0
  assert s[keep].max() <= s[~keep].min()


def _np_synflow(w1, w2):
  # R = 1^T |W1| |W2| 1: biases 0, input ones, tanh replaced by the identity.
  a1 = np.ones(D) @ np.abs(w1)
  d1 = np.abs(w1) * np.outer(np.ones(D), np.abs(w2).sum(1))
  d2 = np.abs(w2) * np.outer(a1, np.ones(C))
  return d1, d2


def test_synflow_one_round_and_iterative_match_numpy(path):
  m = _model(path)
  w1, _, w2, _ = _np_params(m)
  before = m.get_weights()
  res = path.prune(m, "synflow", 0.5, rounds=1)
  want = _np_synflow(w1, w2)
  np.testing.assert_allclose(res.scores["d1/kernel"], want[0], rtol=1e-5)
  np.testing.assert_allclose(res.scores["d2/kernel"], want[1], rtol=1e-5)
  # Biases restored exactly (they were zeroed while scoring).
  np.testing.assert_array_equal(m.get_weights()[1], before[1])
  # Iterative, 4 rounds of the exponential schedule, in NumPy.
  k = 4
  mask = [np.ones_like(w1), np.ones_like(w2)]
  for r in range(1, k + 1):
    s = _np_synflow(w1 * mask[0], w2 * mask[1])
    imp = [np.where(mk > 0, si, -np.inf) for si, mk in zip(s, mask)]
    mask = _topk(imp, 0.2 ** (r / k))
  res = path.prune(_model(path), "synflow", 0.8, rounds=k)
  np.testing.assert_array_equal(res.masks["d1/kernel"], mask[0])
  np.testing.assert_array_equal(res.masks["d2/kernel"], mask[1])
  assert res.rounds == k


def test_synflow_default_rounds_and_batch_norm_neutralised(path):
  K = path.keras
  K.utils.set_random_seed(0)
  m = K.Sequential([
      K.Input((D,)), K.layers.Dense(H, name="d1"),
      K.layers.BatchNormalization(name="bn"),
      K.layers.Activation("relu"),
      K.layers.Dense(C, name="d2")])
  bn = m.get_layer("bn")
  bn.set_weights([np.full(H, 3.0), np.full(H, -1.0), np.full(H, 0.5),
                  np.full(H, 4.0)])
  before = m.get_weights()
  res = path.prune(m, "synflow", 0.3, rounds=1)
  w1, w2 = np.abs(before[0]), np.abs(before[-2])
  # BN is the identity while scoring: a linear relu net, R = 1^T|W1||W2|1.
  want1 = w1 * np.outer(np.ones(D), w2.sum(1) / np.sqrt(1 + 1e-3))
  np.testing.assert_allclose(res.scores["d1/kernel"], want1, rtol=1e-5)
  for a, b in zip(m.get_weights()[2:6], before[2:6]):
    np.testing.assert_array_equal(a, b)  # BN restored bit-exactly
  assert path.prune(m, "synflow", 0.3).rounds == 100


def test_custom_registered_method(path):
  @pruning.register_method("first_layer_only_test")
  class _Neg(pruning.Method):  # pylint: disable=unused-variable
    def score(self, ctx):
      return {t.key: (np.ones(t.variable.shape) if i == 0 else
                      np.zeros(t.variable.shape))
              for i, t in enumerate(ctx.targets)}
  assert "first_layer_only_test" in pruning.methods()
  res = path.prune(_model(path), "first_layer_only_test", 1 - D * H /
                   (D * H + H * C), on_collapse="ignore")
  assert res.masks["d1/kernel"].all() and not res.masks["d2/kernel"].any()

  class Square(pruning.Method):  # an instance, never registered
    name = "square"

    def score(self, ctx):
      return {k: w ** 2 for k, w in ctx.weights().items()}

  m = _model(path)
  np.testing.assert_array_equal(path.score(m, Square())["d1/kernel"],
                                _np_params(m)[0] ** 2)


def _chain(path, depth, width, activation):
  K = path.keras
  K.utils.set_random_seed(0)
  return K.Sequential([K.Input((width,))] + [
      K.layers.Dense(width, activation=activation, name=f"l{i}")
      for i in range(depth)])


def test_synflow_chain_overflowing_float32_is_exact(path):
  # R ~ 1e60: inf in float32, computed exactly in float64 (no rescaling).
  depth, width = 12, 8
  m = _chain(path, depth, width, "relu")
  ws = [np.abs(w) * 1e4 for w in m.get_weights()[::2]]  # R ~ 1e60: f32 inf
  m.set_weights([a for w in ws for a in (w, np.zeros(width))])
  # NumPy float64: linear positive net, score = |W_l| * (a_{l-1} b_l^T).
  fwd = [np.ones(width)]
  for w in ws:
    fwd.append(fwd[-1] @ w)
  bwd = [np.ones(width)]
  for w in reversed(ws):
    bwd.append(w @ bwd[-1])
  bwd = bwd[::-1][1:]
  want = [w * np.outer(a, b) for w, a, b in zip(ws, fwd, bwd)]
  assert np.isfinite(want[0]).all() and want[0].max() > 1e40
  res = path.prune(m, "synflow", 0.5, rounds=1, on_collapse="ignore")
  wm = _topk(want, 0.5)
  for i in range(depth):
    np.testing.assert_array_equal(res.masks[f"l{i}/kernel"], wm[i])


def test_synflow_chain_with_one_dominant_unit_is_exact(path):
  # Each layer: unit 0 gets one weight 1e3, all else ~1e-3. R ~ 1e150:
  # beyond float32 even with each kernel divided by its MEAN fan-in sum (a
  # factor ~width per layer is left, 8^50), within float64: exact scores.
  depth, width = 50, 8
  rng = np.random.default_rng(0)
  ws = []
  for _ in range(depth):
    w = rng.uniform(1e-3, 2e-3, size=(width, width))
    w[0, 0] = 1e3
    ws.append(w)
  m = _chain(path, depth, width, "tanh")
  m.set_weights([a for w in ws for a in (w.astype(np.float32),
                                         np.zeros(width, np.float32))])
  ws = [w.astype(np.float32).astype(np.float64) for w in ws]  # as the model
  fwd = [np.ones(width)]
  for w in ws:
    fwd.append(fwd[-1] @ w)
  bwd = [np.ones(width)]
  for w in reversed(ws):
    bwd.append(w @ bwd[-1])
  bwd = bwd[::-1][1:]
  want = [w * np.outer(a, b) for w, a, b in zip(ws, fwd, bwd)]
  assert max(x.max() for x in want) > 1e140
  res = path.prune(m, "synflow", 0.5, rounds=1, on_collapse="ignore")
  got = np.concatenate([res.scores[f"l{i}/kernel"].ravel()
                        for i in range(depth)])
  ref = np.concatenate([x.ravel() for x in want])
  np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_synflow_on_narrow_resnet_does_not_crash_onednn():
  # Regression: scoring on a batch of ONE image made TF 2.21's oneDNN CPU
  # kernels corrupt the heap (abort) on the 8-channel 1x1 stride-2 shortcut
  # of ResNet32 at width 0.25. Run in a child so a crash fails, not kills.
  import os
  import subprocess
  import sys
  code = (
      "from sbp_tf import models, pruning\n"
      "m = models.build('resnet32', num_classes=10, input_shape=(32, 32, 3),"
      " width_multiplier=0.25, stable=False)\n"
      "r = pruning.prune(m, 'synflow', 0.5, rounds=2, seed=0)\n"
      "print('density', round(r.masks.density(), 4))\n")
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, env=env, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "density 0.5" in proc.stdout


def test_synflow_with_no_path_left_scores_zero_instead_of_failing(path):
  m = _model(path)
  w = m.get_weights()
  w[2] = np.zeros_like(w[2])  # d2 kernel all zero: R = 0 at any scale
  m.set_weights(w)
  res = path.prune(m, "synflow", 0.6, rounds=1, on_collapse="ignore")
  assert all(not np.any(s) for s in res.scores.values())
  assert res.masks.density() == 18 / 45  # round(0.4 * 45) kept


def test_synflow_names_an_unknown_layer_then_takes_its_registered_form(
    path, monkeypatch):
  # An unknown layer is run as it is, with a warning naming it; a form
  # registered with pruning.register_linearization (either Keras' class) is
  # then used, with no warning.
  K = path.keras

  class Cube(K.layers.Layer):
    def call(self, x):
      return x ** 3

  inp = K.Input((4,))
  h = K.layers.Dense(3, use_bias=False, name="a")(inp)
  out = K.layers.Dense(2, use_bias=False, name="b")(Cube(name="cube")(h))
  model = K.Model(inp, out)
  with pytest.warns(UserWarning, match=r"no linear form for 'cube' \(Cube\)"):
    path.score(model, "synflow")
  monkeypatch.setattr(state_lib, "_USER_CALLS", [])  # restored afterwards
  pruning.register_linearization(Cube, lambda layer, x: x)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no warning once registered
    syn = path.score(model, "synflow")
  # R = 1^T |W1| |W2| 1: dR/dW1_ij = (|W2| 1)_j, dR/dW2_jk = (1^T |W1|)_j.
  a1, a2 = (np.abs(model.get_layer(n).kernel.numpy().astype(np.float64))
            for n in ("a", "b"))
  np.testing.assert_allclose(syn["a/kernel"], a1 * a2.sum(1)[None, :],
                             rtol=1e-12)
  np.testing.assert_allclose(syn["b/kernel"], a2 * a1.sum(0)[:, None],
                             rtol=1e-12)
  with pytest.raises(TypeError, match="Layer subclass"):
    pruning.register_linearization(int)
