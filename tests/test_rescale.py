"""The rescaling trick: per-unit kept fan-in second moment and deep EOC
signal, on both Keras paths (the ``path`` fixture), and the same rescaled
weights on both."""

import numpy as np
import pytest

from sbp_tf import eoc, keras3, pruning
from sbp_tf import models as k2_models

SIGMA_B = 0.2


def _conv_model(path, init):
  K = path.keras
  K.utils.set_random_seed(0)
  return K.Sequential([
      K.Input((5, 5, 4)),
      K.layers.Conv2D(6, 3, name="c1", kernel_initializer=init),
      K.layers.Flatten(),
      K.layers.Dense(7, name="d1", kernel_initializer=init)])


def test_offset_mode_conv_and_dense_property(path):
  init = path.initializers.EdgeOfChaos("tanh", sigma_b=SIGMA_B)
  m = _conv_model(path, init)
  res = path.prune(m, "random", 0.7, seed=0, rescale=True)
  s2 = init.sigma_w ** 2
  k = m.get_layer("c1").kernel.numpy().astype(np.float64)
  mask = res.masks["c1/kernel"]
  np.testing.assert_array_equal(k[mask == 0], 0)
  # Per output channel i and offset beta: sum_j (rho W delta)^2 = s2 / 9.
  per_offset = np.sum(k ** 2, axis=2)
  alive = mask.sum(axis=2) > 0
  np.testing.assert_allclose(per_offset[alive], s2 / 9, rtol=1e-5)
  np.testing.assert_allclose(per_offset.sum((0, 1))[alive.all((0, 1))], s2,
                             rtol=1e-5)
  d = m.get_layer("d1").kernel.numpy().astype(np.float64)
  np.testing.assert_allclose(np.sum(d ** 2, axis=0), s2, rtol=1e-5)


def test_channel_mode_and_factor_formula(path):
  init = path.initializers.EdgeOfChaos("tanh", sigma_b=SIGMA_B)
  m = _conv_model(path, init)
  w0 = m.get_layer("c1").kernel.numpy().astype(np.float64)
  res = path.prune(m, "magnitude", 0.8, rescale="channel")
  mask = res.masks["c1/kernel"]
  k = m.get_layer("c1").kernel.numpy().astype(np.float64)
  np.testing.assert_allclose(np.sum(k ** 2, axis=(0, 1, 2)),
                             init.sigma_w ** 2, rtol=1e-5)
  rho = np.sqrt(init.sigma_w ** 2 / np.sum((w0 * mask) ** 2, axis=(0, 1, 2)))
  np.testing.assert_allclose(k, rho * w0 * mask, rtol=1e-5)
  np.testing.assert_allclose(res.rescale_factors["c1/kernel"].ravel(), rho,
                             rtol=1e-6)


def test_empirical_target_without_sigma_w(path):
  m = _conv_model(path, "glorot_normal")
  w0 = m.get_layer("d1").kernel.numpy().astype(np.float64)
  target = np.mean(np.sum(w0 ** 2, axis=0))  # unpruned fan-in, unit average
  path.prune(m, "random", 0.5, seed=1, rescale=True)
  d = m.get_layer("d1").kernel.numpy().astype(np.float64)
  np.testing.assert_allclose(np.sum(d ** 2, axis=0), target, rtol=1e-5)


def _deep_tanh(path, depth, width, seed):
  K = path.keras
  init = path.initializers.EdgeOfChaos("tanh", sigma_b=SIGMA_B, seed=seed)
  K.utils.set_random_seed(seed)
  inp = K.Input((width,))
  h, pre = inp, []
  for i in range(depth):
    h = K.layers.Dense(width, kernel_initializer=init,
                       bias_initializer=init.bias_initializer(),
                       name=f"d{i}")(h)
    pre.append(h)
    h = K.layers.Activation("tanh")(h)
  return K.Model(inp, pre), init


@pytest.mark.parametrize("rescale", [True, False])
def test_deep_pruned_eoc_network_keeps_variance_near_q_star(path, rescale):
  depth, width = 40, 256
  model, init = _deep_tanh(path, depth, width, seed=0)
  q_star = eoc.fixed_point_q("tanh", init.sigma_w, SIGMA_B)
  path.prune(model, "random", 0.9, seed=0, rescale=rescale,
             on_collapse="ignore")
  rng = np.random.default_rng(0)
  # Inputs with first-layer pre-activation variance q*.
  s = np.sqrt((q_star - SIGMA_B ** 2) / init.sigma_w ** 2)
  x = (s * rng.normal(size=(256, width))).astype(np.float32)
  q = [float(np.mean(np.square(np.asarray(p)))) for p in model(x)]
  ratio = np.array(q) / q_star
  if rescale:
    # Finite width (26 kept inputs per unit) makes single layers fluctuate.
    assert abs(ratio[-10:].mean() - 1) < 0.15, ratio
    assert np.all(np.abs(ratio - 1) < 0.3), ratio
  else:
    # Effective sigma_w^2 ~ 0.1 * 1.70: ordered phase, q falls to ~0.1 q*.
    assert np.all(ratio[1:] < 0.25), ratio


def test_both_paths_rescale_to_the_same_weights():
  # The same zoo network and masks on both paths: the same rescaled kernels
  # and factors, in both modes.
  k2 = k2_models.build("vcnn", 10, (8, 8, 3), depth=3, width=8, seed=0)
  k3 = keras3.models.build("vcnn", 10, (8, 8, 3), depth=3, width=8, seed=0)
  rng = np.random.default_rng(0)
  masks = pruning.Masks({t.key: rng.random(t.variable.shape) < 0.3
                         for t in keras3.prunable_targets(k3)})
  for mode in ("offset", "channel"):
    f2 = pruning.apply(k2, masks, rescale=mode)
    f3 = keras3.apply(k3, masks, rescale=mode)
    for t2, t3 in zip(pruning.prunable_targets(k2),
                      keras3.prunable_targets(k3)):
      np.testing.assert_allclose(t3.variable.numpy(), t2.variable.numpy(),
                                 rtol=1e-6)
      np.testing.assert_allclose(f3[t3.key], f2[t2.key], rtol=1e-12)
