"""SynFlow on keras.applications MobileNetV2 against a hand-written reference.

The reference writes MobileNetV2's linearized forward pass from the
architecture's published description (the block table of Sandler et al.
2018 as keras.applications lays it out: expansion 1x1 conv, 3x3 depthwise,
1x1 projection, an identity skip where the block keeps its width and
stride), with ``tf.nn`` ops on ``|W|`` in float64, batch norm
``x / sqrt(1 + eps)``, identity activations (ReLU6 included), global mean
and the dense head, and differentiates ``R`` with a GradientTape. It reads
only the kernels from the model, by layer name, and shares no code with
``sbp_tf.pruning``.

What it establishes (issue 16): at 32x32 inputs the last stage runs on 1x1
feature maps, where a 3x3 depthwise kernel acts through its centre tap
only, and the residual branches of blocks 14 and 15 carry ~61% of the
flow. Every pruning round removes weights from all three kernels of a
branch, so the branch's flow falls like the cube of their kept fraction
while the parameter-free skip keeps its own; iterative SynFlow drives the
two branches to zero (the network stays connected through the skips).
Exact SynFlow does the same, weight for weight: it is the method's
behaviour on this input size, not an artefact of the linearization. From
64x64 inputs (2x2 maps: four live taps) no layer is emptied.
"""

import warnings

import numpy as np
import pytest

from sbp_tf import pruning
from sbp_tf.compat import keras, tf
from synflow_testlib import iterative_masks

EPS = 1e-3  # keras.applications' batch-norm epsilon
# (output width, stride, expansion, repeats) per stage, as the paper's table.
STAGES = [(16, 1, 1, 1), (24, 2, 6, 2), (32, 2, 6, 3), (64, 2, 6, 4),
          (96, 1, 6, 3), (160, 2, 6, 3), (320, 1, 6, 1)]


def _divisible(v, d=8):
  """Channel counts rounded to a multiple of 8, never below 90% of ``v``."""
  out = max(d, int(v + d / 2) // d * d)
  return out + d if out < 0.9 * v else out


def _mobilenet(alpha, size, seed=0):
  keras.utils.set_random_seed(seed)
  return keras.applications.MobileNetV2(
      weights=None, input_shape=(size, size, 3), classes=10, alpha=alpha,
      classifier_activation=None)


def _kernel_names(model):
  """Kernel layer names in the model's layer order (the ranking's ties)."""
  return [l.name for l in model.layers
          if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                             keras.layers.Dense))]


def _kernels(model, mask=None):
  out = {}
  for n in _kernel_names(model):
    layer = model.get_layer(n)
    w = getattr(layer, "depthwise_kernel", None)
    w = layer.kernel if w is None else w
    k = np.abs(w.numpy().astype(np.float64))
    out[n] = tf.constant(k if mask is None else k * mask[n])
  return out


def _r(k, alpha, size):
  """R of the linearized MobileNetV2 on one all-ones image."""
  bn = 1.0 / np.sqrt(1.0 + EPS)

  def conv(x, name, stride=1):
    return tf.nn.conv2d(x, k[name], stride, "SAME") * bn

  def depthwise(x, name, stride):
    if stride == 2:  # keras' correct_pad: (0, 1) on even, (1, 1) on odd sizes
      pad = [(int(x.shape[i]) % 2, 1) for i in (1, 2)]
      x = tf.pad(x, [(0, 0)] + pad + [(0, 0)])
    return tf.nn.depthwise_conv2d(x, k[name], [1, stride, stride, 1],
                                  "SAME" if stride == 1 else "VALID") * bn

  x = conv(tf.ones([1, size, size, 3], tf.float64), "Conv1", 2)
  block = 0
  for width, stride, expansion, repeats in STAGES:
    for i in range(repeats):
      s = stride if i == 0 else 1
      p = f"block_{block}_" if block else "expanded_conv_"
      h = conv(x, p + "expand") if block else x
      h = conv(depthwise(h, p + "depthwise", s), p + "project")
      out = _divisible(int(width * alpha))
      x = x + h if (s == 1 and int(x.shape[-1]) == out) else h
      block += 1
  x = conv(x, "Conv_1")
  return tf.reduce_sum(tf.reduce_mean(x, [1, 2]) @ k["predictions"])


def _reference_masks(model, alpha, size, sparsity, rounds):
  """Iterative exact SynFlow (exponential schedule, dead weights last)."""
  order = _kernel_names(model)
  total = sum(int(np.prod(k.shape)) for k in _kernels(model).values())

  def scores(mask):
    k = _kernels(model, mask)
    with tf.GradientTape() as tape:
      tape.watch(list(k.values()))
      big_r = _r(k, alpha, size)
    g = tape.gradient(big_r, k)
    return {n: k[n].numpy() * g[n].numpy() for n in order}

  return iterative_masks(scores, order, total, sparsity, rounds)


def _key(model, name):
  layer = model.get_layer(name)
  return f"{name}/{'depthwise_kernel' if hasattr(layer, 'depthwise_kernel') else 'kernel'}"


def _prune(model, rounds):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    res = pruning.prune(model, "synflow", 0.9, rounds=rounds)
  return res, [str(w.message) for w in caught]


def _branch_share(model, block):
  """Fraction of R on paths through ``block``'s residual branch."""
  k = _kernels(model)
  full = float(_r(k, 0.35, 32))
  for part in ("expand", "depthwise", "project"):
    k[f"block_{block}_{part}"] = tf.zeros_like(k[f"block_{block}_{part}"])
  return 1.0 - float(_r(k, 0.35, 32)) / full


@pytest.mark.slow
def test_mobilenet_32px_synflow_equals_exact_reference_and_empties_branches():
  model = _mobilenet(0.35, 32)
  # 1x1 maps in the last stage: the depthwise kernels act by the centre tap.
  dw = pruning.score(model, "synflow")["block_14_depthwise/depthwise_kernel"]
  assert np.all(dw[1, 1] > 0) and np.count_nonzero(dw) == dw[1, 1].size
  for block in (14, 15):
    assert 0.55 < _branch_share(model, block) < 0.7
  want = _reference_masks(model, 0.35, 32, 0.9, rounds=10)
  res, said = _prune(model, rounds=10)
  for n, m in want.items():
    np.testing.assert_array_equal(res.masks[_key(model, n)], m, err_msg=n)
  # Exact SynFlow empties the residual branches of blocks 14 and 15 (all
  # three kernels each), nothing else; the skips keep the net connected,
  # and the warning says so.
  emptied = sorted(n for n, m in want.items() if not m.any())
  assert emptied == sorted(f"block_{b}_{part}" for b in (14, 15)
                           for part in ("expand", "depthwise", "project"))
  assert res.diagnostics["connected"]
  assert sorted(res.diagnostics["collapsed"]) == sorted(
      _key(model, n) for n in emptied)
  assert any("block_14_project/kernel" in m and "skip connection bypasses"
             in m for m in said), said


@pytest.mark.slow
def test_mobilenet_64px_synflow_prunes_no_layer_entirely():
  # Issue 16's done-when, at SynFlow's default 100 rounds, full width.
  model = _mobilenet(1.0, 64)
  res, said = _prune(model, rounds=None)
  assert res.rounds == 100
  assert res.masks.kept() == round(0.1 * sum(m.size for m in
                                             res.masks.values()))
  assert res.diagnostics["collapsed"] == [], res.diagnostics["collapsed"]
  assert res.diagnostics["connected"] and not res.diagnostics["dead"]
  assert all(np.any(s > 0) for s in res.scores.values())
  assert not any("fully pruned" in m for m in said), said
