"""SynFlow on residual networks against an independent float64 reference.

The reference writes the CIFAR ResNet's linearized forward pass by hand
(``tf.nn.conv2d`` on ``|W|`` in float64, batch norm ``x / sqrt(1 + eps)``,
identity activations, ``shortcut + s * branch``, global mean, dense head)
and differentiates ``R`` with a float64 GradientTape; it shares no code
with ``sbp_tf.pruning.scores``. Kept sets must be identical, also where
``R`` overflows float32 (where the old per-layer rescaling of kernels,
rank-preserving only for chains, kept a different set).
"""

import math
import warnings

import numpy as np
import pytest

from sbp_tf import models, pruning
from sbp_tf.compat import keras, tf
from sbp_tf.pruning.scores import _is_chain
from synflow_testlib import iterative_masks, keep_top


def _kernels(model):
  """Layer name -> |kernel| as a float64 tensor (every Conv/Dense)."""
  return {l.name: tf.constant(np.abs(l.kernel.numpy().astype(np.float64)))
          for l in model.layers
          if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))}


def _resnet_r(k, depth, stable, eps):
  """R = sum of the outputs of the linearized resnet_cifar on ones."""
  n = (depth - 2) // 6
  s = 1.0 / math.sqrt(3 * n) if stable else 1.0

  def conv(x, name, stride):
    y = tf.nn.conv2d(x, k[name], stride, "SAME")
    return y if eps is None else y / np.sqrt(1.0 + eps)

  x = conv(tf.ones([1, 32, 32, 3], tf.float64), "conv1", 1)
  for stage in (1, 2, 3):
    for b in range(1, n + 1):
      p = f"stage{stage}_block{b}"
      stride = 2 if stage > 1 and b == 1 else 1
      h = conv(conv(x, f"{p}_conv1", stride), f"{p}_conv2", 1)
      sc = conv(x, f"{p}_shortcut", stride) if f"{p}_shortcut" in k else x
      x = sc + h * s
  return tf.reduce_sum(tf.reduce_mean(x, [1, 2]) @ k["logits"])


def _reference_scores(model, depth, stable, eps=1e-3, mask=None):
  """Layer name -> exact float64 SynFlow scores |W| * dR/d|W|."""
  k = _kernels(model)
  if mask is not None:
    k = {n: v * mask[n] for n, v in k.items()}
  with tf.GradientTape() as tape:
    tape.watch(list(k.values()))
    r = _resnet_r(k, depth, stable, eps)
  g = tape.gradient(r, k)
  assert np.isfinite(r.numpy())
  return float(r.numpy()), {n: k[n].numpy() * g[n].numpy() for n in k}


def _reference_masks(model, depth, stable, sparsity, rounds=1, eps=1e-3):
  """Masks of iterative exact SynFlow (exponential schedule)."""
  order = list(_kernels(model))
  total = sum(int(np.prod(model.get_layer(n).kernel.shape)) for n in order)
  return iterative_masks(
      lambda mask: _reference_scores(model, depth, stable, eps, mask)[1],
      order, total, sparsity, rounds)


def _resnet(depth, stable, width, batch_norm=True, seed=0, factor=1.0):
  keras.utils.set_random_seed(seed)
  m = models.build("resnet_cifar", 10, (32, 32, 3), depth=depth, stable=stable,
                   width_multiplier=width, batch_norm=batch_norm)
  if factor != 1.0:  # blow up every kernel: R grows like factor ** depth
    for l in m.layers:
      if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense)):
        l.kernel.assign(l.kernel * factor)
  return m


def _overlap(a, b):
  kept = sum(float(a[n].sum()) for n in a)
  return sum(float((a[n] * b[n]).sum()) for n in a) / kept


def _check_exact(m, depth, stable, sparsity=0.9, rounds=1, eps=1e-3):
  want = _reference_masks(m, depth, stable, sparsity, rounds, eps)
  res = pruning.prune(m, "synflow", sparsity, rounds=rounds,
                      on_collapse="ignore")
  got = {n: res.masks[f"{n}/kernel"] for n in want}
  assert _overlap(got, want) == 1.0, _overlap(got, want)
  for n in want:
    np.testing.assert_array_equal(got[n], want[n], err_msg=n)
  return res, want


@pytest.mark.parametrize("depth,stable,width,batch_norm", [
    (8, False, 0.5, True),    # standard ResNet8: two projection shortcuts
    (14, True, 0.25, True),   # Stable ResNet14: branches scaled 1/sqrt(6)
    (8, False, 0.25, False),  # no batch norm: convs with (zeroed) biases
])
def test_synflow_kept_set_equals_float64_reference(depth, stable, width,
                                                   batch_norm):
  m = _resnet(depth, stable, width, batch_norm)
  before = [w.copy() for w in m.get_weights()]
  eps = 1e-3 if batch_norm else None
  res, want = _check_exact(m, depth, stable, eps=eps)
  _, ref = _reference_scores(_resnet(depth, stable, width, batch_norm),
                             depth, stable, eps)
  for n, s in ref.items():
    np.testing.assert_allclose(res.scores[f"{n}/kernel"], s, rtol=1e-9,
                               atol=0, err_msg=n)
  # The projection shortcuts keep what exact SynFlow keeps.
  for n in ("stage2_block1_shortcut", "stage3_block1_shortcut"):
    assert res.masks[f"{n}/kernel"].sum() == want[n].sum()
  # Every other weight restored (pruned kernels zeroed, kept ones as before).
  for a, b in zip(m.get_weights(), before):
    assert np.array_equal(a, b) or np.array_equal(a, b * (a != 0))


def test_synflow_iterative_on_stable_resnet_equals_float64_reference():
  m = _resnet(8, True, 0.25)
  _check_exact(m, 8, True, sparsity=0.95, rounds=3)


def test_synflow_exact_where_float32_overflows():
  # Kernels x 300: R ~ 2e50 (> float32 max 3.4e38, far below float64's
  # 1.8e308). The old float32 fallback divided each kernel by a per-layer
  # constant, which changes the ranking of a residual net: it kept 87.0% of
  # this kept set (and 95%/78% of the projection shortcuts, exact: 0).
  depth = 14
  m = _resnet(depth, False, 0.25, factor=300.0)
  r, _ = _reference_scores(m, depth, False)
  assert 1e45 < r < 1e300, r
  _check_exact(m, depth, False)


def test_synflow_float64_overflow_on_resnet_raises():
  m = _resnet(14, False, 0.25, factor=1e22)  # R ~ 1e320: inf in float64
  before = [w.copy() for w in m.get_weights()]
  with pytest.raises(ValueError, match="not finite in float64.*skip conn"):
    pruning.prune(m, "synflow", 0.9, rounds=1)
  for a, b in zip(m.get_weights(), before):
    np.testing.assert_array_equal(a, b)  # left unchanged


@pytest.mark.parametrize("factor", [1e15, 1e-20])
def test_synflow_float64_out_of_range_on_chain_rescales_rank_preserving(
    factor):
  # A plain chain where R ~ 1e324 overflows float64 (factor 1e15) or
  # R ~ 1e-376 underflows to 0 (1e-20): each kernel divided by its mean
  # fan-in sum divides every score by the same constant. Reference in the
  # log domain: log S = log|W| + log a_{l-1} + log b_l.
  depth, width = 20, 16
  rng = np.random.default_rng(0)
  ws = [rng.uniform(0.0, 2.0, size=(width, width)) * factor
        for _ in range(depth)]
  m = keras.Sequential(
      [keras.Input((width,))] +
      [keras.layers.Dense(width, activation="relu", name=f"l{i}")
       for i in range(depth)])
  m.set_weights([a for w in ws for a in (w.astype(np.float32),
                                         np.zeros(width, np.float32))])
  ws = [w.astype(np.float32).astype(np.float64) for w in ws]

  def normalized_products(mats):
    v, logc, out = np.ones(width), 0.0, []
    for w in mats:
      out.append(np.log(v) + logc)
      v = v @ w
      logc += np.log(v.sum())
      v /= v.sum()
    return out

  log_a = normalized_products(ws)  # log of 1^T |W_1| ... |W_{l-1}|
  log_b = normalized_products([w.T for w in ws[::-1]])[::-1]
  log_r = log_a[-1].max() + np.log(ws[-1]).max() + log_b[-1].max()
  assert log_r > 710 or log_r < -745  # outside float64's range
  log_s = {f"l{i}": np.log(w) + log_a[i][:, None] + log_b[i][None, :]
           for i, w in enumerate(ws)}
  want = keep_top(log_s, list(log_s), int(round(0.5 * depth * width**2)))
  res = pruning.prune(m, "synflow", 0.5, rounds=1, on_collapse="ignore")
  for n, w in want.items():
    np.testing.assert_array_equal(res.masks[f"{n}/kernel"], w, err_msg=n)


class _Unserializable(keras.layers.Layer):
  """``fn(x)``; a Python callable argument has no config: cannot clone."""

  def __init__(self, fn, **kwargs):
    super().__init__(**kwargs)
    self.fn = fn

  def call(self, x):
    return self.fn(x)


class _CastToFloat32(keras.layers.Layer):
  """Computes in float32 whatever its dtype: a float64 clone would not."""

  def call(self, x):
    return tf.cast(x, tf.float32)


def _residual_mlp(scale, odd_layer=None):
  keras.utils.set_random_seed(0)
  x = keras.Input((6,))
  h = keras.layers.Dense(6, activation="relu", name="a")(x)
  h = keras.layers.Dense(6, name="b")(h)
  odd_layer = odd_layer or _Unserializable(lambda t: t)
  y = keras.layers.Add()([x, odd_layer(h)])
  y = keras.layers.Dense(3, name="c")(y)
  m = keras.Model(x, y)
  m.set_weights([w * scale for w in m.get_weights()])
  return m


def test_synflow_without_float64_clone_runs_in_float32_and_never_rescales():
  # R = 1^T (I + |A||B|) |C| 1: exact in float32 at scale 1.
  m = _residual_mlp(1.0)
  a, b, c = (np.abs(m.get_layer(n).kernel.numpy().astype(np.float64))
             for n in "abc")
  ones = np.ones(6)
  want = {"a": a * np.outer(ones, b @ c.sum(1)),
          "b": b * np.outer(ones @ a, c.sum(1)),
          "c": c * np.outer(ones + ones @ a @ b, np.ones(3))}
  res = pruning.prune(m, "synflow", 0.5, rounds=1)
  for n, s in want.items():
    np.testing.assert_allclose(res.scores[f"{n}/kernel"], s, rtol=1e-5)
  # Overflowing float32 with a skip connection: no rescaling, a clear error.
  with pytest.raises(ValueError, match="float32 .*could not be cloned.*"
                     "NotImplementedError.*skip conn"):
    pruning.prune(_residual_mlp(1e14), "synflow", 0.5, rounds=1)


def test_synflow_clone_computing_in_float32_is_not_used():
  # The clone's graph holds a float32 tensor: not exact, scored in float32.
  with pytest.raises(ValueError, match="could not be cloned in float64: "
                     "ValueError: the float64 clone computes in float32"):
    pruning.prune(_residual_mlp(1e14, _CastToFloat32()), "synflow", 0.5,
                  rounds=1)


def test_synflow_leaves_the_random_state_alone():
  # The float64 clone initializes with zeros: no random op, so what is drawn
  # after pruning is what would be drawn without it.
  draws = []
  for prune in (False, True):
    m = _resnet(8, False, 0.25)  # sets the random seed
    if prune:
      pruning.prune(m, "synflow", 0.5, rounds=1)
    draws.append(tf.random.normal([4]).numpy())
  np.testing.assert_array_equal(draws[0], draws[1])


def test_is_chain():
  seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                          keras.Sequential([keras.layers.Dense(2)])])
  assert _is_chain(seq)
  x = keras.Input((4,))
  assert _is_chain(keras.Model(x, keras.layers.Dense(2)(
      keras.layers.Dense(3)(x))))
  shared = keras.layers.Dense(4)
  assert not _is_chain(keras.Model(x, shared(shared(x))))
  assert not _is_chain(keras.Model(x, keras.layers.Add()(
      [x, keras.layers.Dense(4)(x)])))
  assert not _is_chain(_resnet(8, False, 0.25))


def test_stable_scale_is_linear_without_a_warning():
  # StableScale (shortcut + branch / sqrt(L)) is linear as it is: SynFlow
  # and the connectivity check used to warn "no linear form" on every
  # Stable ResNet. The kept set above matches the reference with it as is.
  m = _resnet(8, True, 0.25)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert pruning.connectivity(m).connected  # unpruned
    pruning.prune(m, "synflow", 0.9, rounds=1, on_collapse="ignore")
  said = [str(w.message) for w in caught]
  assert not [m for m in said if "no linear form" in m], said
