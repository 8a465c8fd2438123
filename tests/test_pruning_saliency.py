"""Saliency: one-pass (g, Hg) equals the two-pass path; per-model caching."""

import numpy as np

from sbp_tf import pruning
from sbp_tf.compat import keras
from sbp_tf.pruning import saliency


def _model():
  keras.utils.set_random_seed(3)
  return keras.Sequential([
      keras.layers.Dense(7, activation="tanh", input_shape=(5,), name="a"),
      keras.layers.Dense(4, name="b")])


def _data(n=16):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, 5)).astype(np.float32),
          rng.integers(0, 4, size=n).astype(np.int32))


def test_one_pass_g_and_hg_equal_two_pass():
  m = _model()
  variables = [m.get_layer("a").kernel, m.get_layer("b").kernel]
  sal = saliency.Saliency(m, variables)
  data = _data()
  g1, hg1 = sal.gradient_and_hessian_gradient(data, 1, temperature=200.0)
  g2 = sal.gradients(data, 1, temperature=200.0)
  hg2 = sal.hessian_gradient(data, g2, 1, temperature=200.0)
  for a, b in zip(g1 + hg1, g2 + hg2):
    scale = np.abs(b).max()
    assert scale > 0
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * scale)


def test_two_batches_use_the_summed_gradient():
  # With 2 batches Hg must use g summed over both batches, so it equals
  # H_1 g + H_2 g with the full g, not H_1 g_1 + H_2 g_2.
  m = _model()
  variables = [m.get_layer("a").kernel, m.get_layer("b").kernel]
  sal = saliency.Saliency(m, variables)
  x, y = _data(32)
  from sbp_tf.compat import tf
  ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
  g, hg = sal.gradient_and_hessian_gradient(ds, 2)
  g_a = sal.gradients((x[:16], y[:16]))
  g_b = sal.gradients((x[16:], y[16:]))
  want_g = [a + b for a, b in zip(g_a, g_b)]
  want_hg = [a + b for a, b in zip(
      sal.hessian_gradient((x[:16], y[:16]), want_g),
      sal.hessian_gradient((x[16:], y[16:]), want_g))]
  for a, b in zip(g + hg, want_g + want_hg):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_pruning_twice_reuses_the_traced_function():
  m = _model()
  data = _data()
  pruning.prune(m, "sbp", 0.5, data=data)
  cache = m.__dict__[saliency._CACHE_ATTR]  # pylint: disable=protected-access
  assert len(cache) == 1
  sal = next(iter(cache.values()))[0]
  step = sal._fns["grad"]  # pylint: disable=protected-access
  pruning.prune(m, "sbp", 0.7, data=data)
  assert len(cache) == 1
  assert step.experimental_get_tracing_count() == 1
  # A different loss is a different entry (its own trace) ...
  sce = keras.losses.SparseCategoricalCrossentropy
  pruning.prune(m, "sbp", 0.5, data=data, loss=sce(from_logits=True))
  assert len(cache) == 2
  # ... but a built-in loss written inline again, equal by config, is not,
  # while one with another config, or a plain function, is.
  pruning.prune(m, "sbp", 0.5, data=data, loss=sce(from_logits=True))
  assert len(cache) == 2
  pruning.prune(m, "sbp", 0.5, data=data,
                loss=sce(from_logits=True, ignore_class=3))
  assert len(cache) == 3
  fn = lambda y, z: sce(from_logits=True)(y, z)  # noqa: E731
  pruning.prune(m, "sbp", 0.5, data=data, loss=fn)
  pruning.prune(m, "sbp", 0.5, data=data, loss=fn)
  assert len(cache) == 4
  # The cache is not a Keras-tracked attribute: saving is unaffected.
  assert saliency._CACHE_ATTR not in [  # pylint: disable=protected-access
      n for n, _ in m._trackable_children().items()]  # pylint: disable=protected-access


def _bn_model():
  keras.utils.set_random_seed(0)
  x = keras.Input((8, 8, 3))
  h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(x)
  h = keras.layers.BatchNormalization(name="bn")(h)
  h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
  return keras.Model(x, keras.layers.Dense(5, name="head")(h))


def _hg_float64(model, x, y):
  """``H g`` of the conv kernel written out in float64 with plain ops
  (conv, batch-statistics BN, ReLU, mean, dense, softmax cross-entropy)."""
  tf = saliency.tf
  f64 = lambda a: tf.constant(np.asarray(a, np.float64))
  k = tf.Variable(f64(model.get_layer("c1").kernel.numpy()))
  bn = model.get_layer("bn")
  gamma, beta, eps = f64(bn.gamma.numpy()), f64(bn.beta.numpy()), bn.epsilon
  w, b = (f64(v.numpy()) for v in model.get_layer("head").weights)
  def loss():
    h = tf.nn.conv2d(f64(x), k, 1, "SAME")
    mean, var = tf.nn.moments(h, axes=[0, 1, 2])
    h = tf.nn.relu(gamma * (h - mean) / tf.sqrt(var + eps) + beta)
    logits = tf.reduce_mean(h, axis=[1, 2]) @ w + b
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.constant(y), logits))
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      value = loss()
    g = inner.gradient(value, k)
    z = tf.reduce_sum(g * tf.stop_gradient(g))
  return outer.gradient(z, k).numpy()


def test_hessian_gradient_through_batch_norm_is_exact():
  # tf_keras's fused batch norm has an inexact second derivative (H g of
  # this conv was 0.85% of its largest entry off); second-order passes trace
  # it unfused, and the layer is fused again afterwards.
  m = _bn_model()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 8, 8, 3)).astype(np.float32)
  y = rng.integers(0, 5, 8).astype(np.int32)
  want = _hg_float64(m, x, y)
  sal = saliency.Saliency(m, [m.get_layer("c1").kernel])
  _, hg_one = sal.gradient_and_hessian_gradient((x, y), 1)
  g = sal.gradients((x, y), 1)
  hg_two = sal.hessian_gradient((x, y), g, 1)
  for got in (hg_one[0], hg_two[0]):
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 1e-4, err
  assert m.get_layer("bn").fused is True
