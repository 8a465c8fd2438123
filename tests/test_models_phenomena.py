"""Measured mean-field phenomena at initialization (no training).

1. Depth-100 tanh FFNN and V-CNN: the pre-activation second moment stays at the
   EOC q* under EOC init, and under the ordered init (sigma_w^2, sigma_b^2) =
   (0.1, 1) it settles at the ordered q* while the correlation between two
   inputs collapses to 1 (all inputs map to the same output).
2. CIFAR ResNets without batch norm: the gradient norm w.r.t. the first
   block's input over that w.r.t. the last block's input grows
   exponentially with depth for the standard ResNet and stays O(1) for
   Stable ResNet (the quantity the Stable ResNet theory bounds).
"""

import numpy as np
import pytest

from sbp_tf import eoc
from sbp_tf import models
from sbp_tf.compat import keras, tf

DEPTH = 100
EOC_SW, EOC_SB = eoc.eoc_sigma_w("tanh", 0.2), 0.2
ORD_SW, ORD_SB = 0.1 ** 0.5, 1.0


def _propagate(name, init, shape, width, crop=None):
  keras.utils.set_random_seed(1)
  model = models.build(name, 10, shape, depth=DEPTH, width=width, init=init,
                       activation="tanh")
  prefix = "dense" if name == "ffnn" else "conv"
  probe = keras.Model(model.input, [model.get_layer(f"{prefix}_{l}").output
                                    for l in range(1, DEPTH + 1)])
  batch = 4 if crop else 8
  x = np.random.default_rng(0).normal(size=(batch,) + shape).astype("float32")
  q, c = [], []
  for h in probe(x):
    h = h.numpy()
    if crop:  # centre pixels: zero padding lowers the variance at borders.
      h = h[:, crop:-crop, crop:-crop]
    q.append(np.mean(h ** 2))
    a, b = h[0].ravel(), h[1].ravel()
    c.append(a @ b / np.sqrt((a @ a) * (b @ b)))
  return np.array(q), np.array(c)


@pytest.mark.parametrize("name,shape,width,crop", [
    ("ffnn", (64,), 256, None), ("vcnn", (16, 16, 3), 32, 4)])
def test_second_moment_eoc_vs_ordered(name, shape, width, crop):
  q_eoc = eoc.fixed_point_q("tanh", EOC_SW, EOC_SB)   # ~0.512
  q_ord = eoc.fixed_point_q("tanh", ORD_SW, ORD_SB)   # ~1.040
  q, c = _propagate(name, "eoc", shape, width, crop)
  ratio = q[19:] / q_eoc
  print(f"{name} eoc: mean q_l/q* (l=20..100) {ratio.mean():.3f}, "
        f"1-c_100 {1 - c[-1]:.2e}")
  assert ratio.mean() == pytest.approx(1.0, abs=0.12)
  assert (q[79:] / q_eoc).mean() == pytest.approx(1.0, abs=0.12)
  assert 1 - c[-1] > 1e-3        # inputs still distinguishable at depth 100
  q, c = _propagate(name, "ordered", shape, width, crop)
  ratio = q[19:] / q_ord
  print(f"{name} ordered: mean q_l/q*_ord {ratio.mean():.3f}, "
        f"q_l/q*_eoc {(q[19:] / q_eoc).mean():.3f}, 1-c_100 {1 - c[-1]:.2e}")
  assert ratio.mean() == pytest.approx(1.0, abs=0.12)
  assert (q[19:] / q_eoc).mean() > 1.6    # a different fixed point
  assert 1 - c[-1] < 1e-5                 # collapsed: one output for all


def _grad_ratio(depth, stable):
  keras.utils.set_random_seed(0)
  n = (depth - 2) // 6
  model = models.build("resnet_cifar", 10, (8, 8, 3), depth=depth,
                       stable=stable, batch_norm=False, width_multiplier=0.5)
  names = ["act1", f"stage3_block{n - 1}_out"]   # inputs of blocks 1 and L
  x = tf.random.normal((8, 8, 8, 3))
  y = tf.constant(np.arange(8) % 10)
  feats = keras.Model(model.input, [model.get_layer(k).output
                                    for k in names])(x)
  norms = []
  for k, f in zip(names, feats):
    tail = keras.Model(model.get_layer(k).output, model.output)
    with tf.GradientTape() as tape:
      tape.watch(f)
      loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
          y, tail(f))
    norms.append(float(tf.norm(tape.gradient(loss, f))))
  return norms[0] / norms[1]


def test_resnet_gradient_ratio_standard_explodes_stable_bounded():
  std = {d: _grad_ratio(d, False) for d in (32, 104)}
  stb = {d: _grad_ratio(d, True) for d in (32, 104)}
  print(f"first/last gradient norm ratio: standard {std}, stable {stb}")
  assert std[104] > 100 * std[32] and std[32] > 5
  assert 0.2 < stb[32] < 5 and 0.2 < stb[104] < 5
  assert std[104] > 1000 * stb[104]
