"""Keras 3 scores against closed forms; prune/apply/rescale contracts."""

import warnings

import keras
import numpy as np
import pytest

from sbp_tf import keras3
from sbp_tf import models as k2_models
from sbp_tf import pruning
from sbp_tf.pruning import scores as methods_lib
from sbp_tf.pruning import state as state_lib


def _softmax_regression(seed=0):
  """logits = x W (no bias): closed-form gradients."""
  inp = keras.Input((5,))
  out = keras.layers.Dense(3, use_bias=False, name="d")(inp)
  model = keras.Model(inp, out)
  w = np.random.default_rng(seed).normal(size=(5, 3)).astype("float32")
  model.get_layer("d").kernel.assign(w)
  return model, w.astype(np.float64)


def _batch(n=8):
  rng = np.random.default_rng(1)
  return rng.normal(size=(n, 5)).astype("float32"), np.arange(n) % 3


def _closed_form(w, x, y, temperature=1.0):
  """g = X^T (p - Y) / (B T); H g = sum_i x_i (J_i (x_i g) / T) / (B T),
  J_i = diag(p_i) - p_i p_i^T the softmax Jacobian."""
  x = x.astype(np.float64)
  z = x @ w / temperature
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  onehot = np.eye(3)[y]
  b = len(x)
  g = x.T @ (p - onehot) / (b * temperature)
  u = x @ g / temperature
  ju = p * (u - np.sum(p * u, 1, keepdims=True))
  return g, x.T @ ju / (b * temperature)


def test_sbp_and_grasp_scores_equal_their_closed_forms():
  model, w = _softmax_regression()
  x, y = _batch()
  g, _ = _closed_form(w, x, y)
  sbp = keras3.score(model, "sbp", data=(x, y))
  np.testing.assert_allclose(sbp["d/kernel"], np.abs(w * g), rtol=1e-5,
                             atol=1e-7)
  _, hg = _closed_form(w, x, y, temperature=200.0)
  grasp = keras3.score(model, "grasp", data=(x, y))
  assert grasp.keep == "smallest"
  np.testing.assert_allclose(grasp["d/kernel"], -w * hg, rtol=1e-3,
                             atol=1e-3 * np.abs(w * hg).max())


def test_magnitude_random_and_synflow_closed_forms():
  inp = keras.Input((4,))
  h = keras.layers.Dense(3, use_bias=False, activation="tanh", name="a")(inp)
  out = keras.layers.Dense(2, use_bias=False, name="b")(h)
  model = keras.Model(inp, out)
  w1, w2 = (v.numpy().astype(np.float64) for v in (
      model.get_layer("a").kernel, model.get_layer("b").kernel))
  assert np.array_equal(keras3.score(model, "magnitude")["a/kernel"],
                        np.abs(w1))
  rng = np.random.default_rng([7, 0])
  rand = keras3.score(model, "random", seed=7)
  np.testing.assert_array_equal(rand["a/kernel"], rng.random((4, 3)))
  np.testing.assert_array_equal(rand["b/kernel"], rng.random((3, 2)))
  # R = 1^T |W1| |W2| 1: dR/dW1_ij = (|W2| 1)_j, dR/dW2_jk = (1^T |W1|)_j.
  syn = keras3.score(model, "synflow")
  a1, a2 = np.abs(w1), np.abs(w2)
  np.testing.assert_allclose(syn["a/kernel"], a1 * a2.sum(1)[None, :],
                             rtol=1e-12)
  np.testing.assert_allclose(syn["b/kernel"], a2 * a1.sum(0)[:, None],
                             rtol=1e-12)


def test_prune_keeps_exact_count_and_restores_everything_else():
  model = keras3.models.build("resnet_cifar", 10, (8, 8, 3), depth=8,
                              width_multiplier=0.25, seed=0)
  rng = np.random.default_rng(0)
  data = (rng.normal(size=(16, 8, 8, 3)).astype("float32"), np.arange(16) % 10)
  before = {v.path: v.numpy() for v in model.weights}
  result = keras3.prune(model, "sbp", 0.8, data=data)
  n = result.masks.size()
  assert result.masks.kept() == round(0.2 * n)
  assert result.report.total_kept == result.masks.kept()
  assert [r["layer"] for r in result.report] == [
      t.key for t in keras3.prunable_targets(model)]
  kernels = {t.variable.path: t.key for t in keras3.prunable_targets(model)}
  for v in model.weights:  # BN statistics etc. bit-identical
    if v.path in kernels:
      np.testing.assert_array_equal(
          v.numpy(), before[v.path] * result.masks[kernels[v.path]])
    else:
      np.testing.assert_array_equal(v.numpy(), before[v.path])
  assert result.diagnostics["connected"] is True
  assert 0.8 < result.diagnostics["critical_sparsity"] < 1.0


def test_steps_compose_to_prune():
  data = (np.random.default_rng(2).normal(size=(16, 8, 8, 1)).astype(
      "float32"), np.arange(16) % 10)
  m1 = keras3.models.build("ffnn", 10, (8, 8, 1), depth=2, width=16, seed=0)
  m2 = keras3.models.build("ffnn", 10, (8, 8, 1), depth=2, width=16, seed=0)
  result = keras3.prune(m1, "grasp", 0.7, data=data)
  masks = keras3.select(keras3.score(m2, "grasp", data=data), 0.7)
  keras3.apply(m2, masks)
  for k in masks:
    np.testing.assert_array_equal(masks[k], result.masks[k])
  for a, b in zip(m1.weights, m2.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_rescale_equals_the_tf_keras_rescaling():
  k2 = k2_models.build("vcnn", 10, (8, 8, 3), depth=3, width=8, seed=0)
  k3 = keras3.models.build("vcnn", 10, (8, 8, 3), depth=3, width=8, seed=0)
  rng = np.random.default_rng(0)
  masks = keras3.Masks({t.key: rng.random(t.variable.shape) < 0.3
                        for t in keras3.prunable_targets(k3)})
  for mode in ("offset", "channel"):
    f2 = pruning.apply(k2, masks, rescale=mode)
    f3 = keras3.apply(k3, masks, rescale=mode)
    for t2, t3 in zip(pruning.prunable_targets(k2),
                      keras3.prunable_targets(k3)):
      np.testing.assert_allclose(t3.variable.numpy(), t2.variable.numpy(),
                                 rtol=1e-6)
      np.testing.assert_allclose(f3[t3.key], f2[t2.key], rtol=1e-12)
  # After 'channel' (the last mode): sum W^2 over a kept output channel's
  # whole fan-in is sigma_w^2 (paper Prop. 3).
  t = keras3.prunable_targets(k3)[1]
  w = t.variable.numpy().astype(np.float64)
  s2 = t.layer.kernel_initializer.sigma_w ** 2
  np.testing.assert_allclose(np.sum(w ** 2, axis=(0, 1, 2)), s2, rtol=1e-5)


def test_a_method_instance_from_the_shared_registry_scores_keras3_models():
  class Square(methods_lib.Method):
    name = "square"

    def score(self, ctx):
      return {k: w ** 2 for k, w in ctx.weights().items()}

  model, w = _softmax_regression()
  s = keras3.score(model, Square())
  np.testing.assert_array_equal(s["d/kernel"], w ** 2)


def test_collapse_and_wrong_models_are_reported():
  model, _ = _softmax_regression()
  with pytest.raises(ValueError, match="fully pruned"):
    keras3.prune(model, "magnitude", 0.99, on_collapse="error")
  assert np.count_nonzero(model.get_layer("d").kernel.numpy()) == 15
  k2 = k2_models.build("ffnn", 10, (4,), depth=1, width=4)
  with pytest.raises(TypeError, match="sbp_tf.pruning.prune"):
    keras3.prune(k2, "magnitude", 0.5)
  with pytest.raises(TypeError, match="Keras 3 model"):
    pruning.prune(model, "magnitude", 0.5)
  with pytest.raises(ValueError, match="one-hot"):
    keras3.prune(model, "sbp", 0.5, data=(_batch()[0], np.eye(3)[_batch()[1]]))


def test_synflow_names_an_unknown_layer_then_takes_its_registered_form(
    monkeypatch):
  # The Keras 3 path warns like the tf_keras one, and honours the same
  # registry (pruning.register_linearization accepts Keras 3 classes).
  class Cube(keras.layers.Layer):
    def call(self, x):
      return x ** 3

  inp = keras.Input((4,))
  h = keras.layers.Dense(3, use_bias=False, name="a")(inp)
  out = keras.layers.Dense(2, use_bias=False, name="b")(Cube(name="cube")(h))
  model = keras.Model(inp, out)
  with pytest.warns(UserWarning, match=r"no linear form for 'cube' \(Cube\)"):
    keras3.score(model, "synflow")
  monkeypatch.setattr(state_lib, "_USER_CALLS", [])  # restored afterwards
  pruning.register_linearization(Cube, lambda layer, x: x)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no warning once registered
    syn = keras3.score(model, "synflow")
  a1, a2 = (np.abs(model.get_layer(n).kernel.numpy().astype(np.float64))
            for n in ("a", "b"))
  np.testing.assert_allclose(syn["a/kernel"], a1 * a2.sum(1)[None, :],
                             rtol=1e-12)
  with pytest.raises(TypeError, match="Layer subclass"):
    pruning.register_linearization(int)
