"""The package selects Keras 2 (tf_keras) and refuses Keras 3 loudly."""

import os
import subprocess
import sys

import numpy as np
import pytest

from sbp_tf import compat
from sbp_tf.compat import keras, tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tf_keras_is_keras_2():
  assert keras.__name__.startswith("tf_keras")
  assert tf.keras is keras
  import tf_keras  # pylint: disable=g-import-not-at-top
  assert tf_keras.__version__.startswith("2.")


def _run(code, env_extra):
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env.update(env_extra)
  env["PYTHONPATH"] = REPO
  return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_importing_sbp_tf_first_selects_tf_keras_without_env_var():
  out = _run("import sbp_tf.compat as c; print(c.keras.__name__)", {})
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip().startswith("tf_keras")


@pytest.mark.slow
def test_keras3_resolved_before_sbp_tf_gives_clear_error():
  # tf.keras is resolved lazily on first access; once it became Keras 3 it
  # stays Keras 3, which tfmot cannot wrap.
  out = _run("import tensorflow as tf; tf.keras.layers; import sbp_tf.compat",
             {})
  assert out.returncode != 0
  assert "TF_USE_LEGACY_KERAS=1" in out.stderr


def test_explicit_keras3_request_is_refused():
  out = _run("import sbp_tf", {"TF_USE_LEGACY_KERAS": "0"})
  assert out.returncode != 0
  assert "needs Keras 2 (tf_keras)" in out.stderr


# Each sbp_tf.compat adapter against the installed Keras: a Keras release
# that moves one of these internals fails here, naming the adapter.


def test_set_variable_constraint_is_applied_by_the_optimizer():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  v = tf.Variable([1.0, -2.0, 3.0])
  compat.set_variable_constraint(v, lambda w: w * tf.constant([1.0, 0.0, 1.0]))
  assert v.constraint is not None
  opt = keras.optimizers.SGD(0.1)
  opt.apply_gradients([(tf.ones(3), v)])
  assert v.numpy()[1] == 0.0 and v.numpy()[0] == pytest.approx(0.9)


def test_autocast_inner_unwraps_mixed_precision_variables():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  old = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
  finally:
    keras.mixed_precision.set_global_policy(old)
  inner = compat.autocast_inner(layer.kernel)
  assert inner is not layer.kernel and inner.dtype == tf.float32
  assert isinstance(inner, tf.Variable)
  plain = tf.Variable(1.0)
  assert compat.autocast_inner(plain) is plain


def _functional():
  x = keras.Input((4,))
  h = keras.layers.Dense(3, name="d1")(x)
  return keras.Model(x, keras.layers.Dense(2, name="d2")(h))


def test_is_graph_network():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top

  class Sub(keras.Model):

    def call(self, x):
      return x

  assert compat.is_graph_network(_functional())
  assert not compat.is_graph_network(Sub())
  assert not compat.is_graph_network(keras.layers.Dense(1))


def test_nodes_by_depth_lists_every_layer_call():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  nodes = compat.nodes_by_depth(_functional())
  names = {n.layer.name for ns in nodes.values() for n in ns}
  assert {"d1", "d2"} <= names
  with pytest.raises(TypeError, match="not a functional model"):
    compat.nodes_by_depth(keras.layers.Dense(1))


def test_flatten_layers_walks_nested_models():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  inner = _functional()
  x = keras.Input((4,))
  outer = keras.Model(x, inner(x))
  found = compat.flatten_layers(outer, include_self=False)
  assert outer not in found and inner in found
  assert {"d1", "d2"} <= {l.name for l in found}
  assert compat.flatten_layers(outer)[0] is outer


def test_batch_input_shape_round_trip():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  declared = keras.layers.Dense(2, input_shape=(5,))
  assert tuple(compat.batch_input_shape(declared)) == (None, 5)
  plain = keras.layers.Dense(2)
  assert compat.batch_input_shape(plain) is None
  compat.set_batch_input_shape(plain, (None, 7))
  model = keras.Sequential([plain])
  assert model.built and tuple(model.input_shape) == (None, 7)


def _subclassed(K):
  """A subclassed model class of Keras ``K`` taking a tensor or a dict."""

  class Sub(K.Model):

    def __init__(self):
      super().__init__()
      self.d = K.layers.Dense(2)

    def call(self, x):
      if isinstance(x, dict):
        return self.d(tf.concat([x["a"], x["b"]], -1))
      return self.d(x)
  return Sub


def test_build_input_shape_of_a_subclassed_model():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  Sub = _subclassed(keras)  # pylint: disable=invalid-name
  unbuilt = Sub()
  assert compat.build_input_shape(unbuilt) is None
  built = Sub()
  built.build((None, 7))  # build only: the shape Keras was given
  assert compat.build_input_shape(built) == tf.TensorShape([None, 7])
  called = Sub()
  called({"a": tf.ones((3, 2)), "b": tf.ones((3, 4))})  # first call's shapes
  assert compat.build_input_shape(called) == {
      "a": tf.TensorShape([3, 2]), "b": tf.TensorShape([3, 4])}
  # call_spec: the first call's specs (batch None, its dtypes), else the
  # build shape as float specs, else None.
  assert compat.call_spec(unbuilt) is None
  assert compat.call_spec(built) == tf.TensorSpec([None, 7], tf.float32)
  assert compat.call_spec(called) == {
      "a": tf.TensorSpec([None, 2], tf.float32, name="a"),
      "b": tf.TensorSpec([None, 4], tf.float32, name="b")}


def test_build_input_shape_of_a_keras3_subclassed_model():
  # Keras 3 records it in its public build config: the first call's shapes
  # (batch dimension made None: any batch) or those given to build.
  import keras as keras3  # pylint: disable=g-import-not-at-top
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  Sub = _subclassed(keras3)  # pylint: disable=invalid-name
  assert compat.build_input_shape(Sub()) is None
  assert compat.call_spec(Sub()) is None
  called = Sub()
  called({"a": np.ones((3, 2), "float32"), "b": np.ones((3, 4), "float32")})
  assert compat.build_input_shape(called) == {
      "a": tf.TensorShape([None, 2]), "b": tf.TensorShape([None, 4])}
  one = Sub()
  one(np.ones((3, 5), "float32"))
  assert compat.build_input_shape(one) == tf.TensorShape([None, 5])
  assert compat.call_spec(one) == tf.TensorSpec([None, 5], tf.float32)


def test_functional_class_is_the_class_of_functional_models():
  from sbp_tf import compat  # pylint: disable=g-import-not-at-top
  assert type(_functional()) is compat.functional_class()  # pylint: disable=unidiomatic-typecheck
  assert issubclass(keras.Sequential, compat.functional_class())


def test_unfused_normalization_switches_and_restores_the_fused_ops():
  x = keras.Input((4, 4, 2))
  h = keras.layers.BatchNormalization(name="bn")(x)
  m = keras.Model(x, keras.layers.LayerNormalization(name="ln")(h))
  m(np.zeros((1, 4, 4, 2), np.float32))  # LayerNormalization decides in build
  bn, ln = m.get_layer("bn"), m.get_layer("ln")
  assert (bn.fused, ln._fused) == (True, True)  # the attributes Keras reads
  with compat.unfused_normalization(m):
    assert (bn.fused, ln._fused) == (False, False)
  assert (bn.fused, ln._fused) == (True, True)


def _keras3_bn_net(k3, **bn_kwargs):
  x = k3.Input((6, 6, 3))
  h = k3.layers.Conv2D(4, 3, padding="same", name="conv")(x)
  h = k3.layers.BatchNormalization(name="bn", momentum=0.9, **bn_kwargs)(h)
  return k3.Model(x, k3.layers.Dense(2, name="head")(k3.layers.Flatten()(h)))


def _grads_and_stats(model, x, context):
  @tf.function
  def step(x):
    with context():
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x, training=True)))
      return tape.gradient(loss, model.trainable_variables)
  bn = model.get_layer("bn")
  before = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
  grads = [g.numpy() for g in step(x)]
  after = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
  bn.moving_mean.assign(before[0])
  bn.moving_variance.assign(before[1])
  return grads, after


@pytest.mark.parametrize("bn_kwargs", [{}, {"center": False, "scale": False}])
def test_fused_normalization_matches_keras3_batch_norm(bn_kwargs):
  # The fused kernel computes Keras 3's training-mode batch norm: the same
  # gradients to float32 round-off, the same moving-statistics update
  # (biased variance), and the layer's own call back on exit.
  import contextlib  # pylint: disable=g-import-not-at-top
  import keras as keras3  # pylint: disable=g-import-not-at-top
  keras3.utils.set_random_seed(3)
  m = _keras3_bn_net(keras3, **bn_kwargs)
  x = tf.random.normal([5, 6, 6, 3], seed=1) * 2.0 + 0.5
  own, own_stats = _grads_and_stats(m, x, contextlib.nullcontext)
  fused, fused_stats = _grads_and_stats(
      m, x, lambda: compat.fused_normalization(m))
  for a, b in zip(own + own_stats, fused + fused_stats):
    np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)
  assert np.abs(own_stats[0]).max() > 1e-3  # the statistics did move
  assert "call" not in vars(m.get_layer("bn"))
  # Keras 3's graph has its many unfused ops; the fused one has the kernel.
  ops = lambda ctx: {op.type for op in tf.function(  # noqa: E731
      lambda x: _call_in(m, x, ctx)).get_concrete_function(x).graph
                     .get_operations()}
  assert "FusedBatchNormV3" not in ops(contextlib.nullcontext)
  assert "FusedBatchNormV3" in ops(lambda: compat.fused_normalization(m))


def _call_in(model, x, context):
  with context():
    return model(x, training=True)


def test_fused_normalization_in_inference_mode_and_tf_keras_untouched():
  # Inference mode: the moving statistics, fused, with Keras 3's values and
  # gradients; a tf_keras model (already fused) is left as it is.
  import contextlib  # pylint: disable=g-import-not-at-top
  import keras as keras3  # pylint: disable=g-import-not-at-top
  keras3.utils.set_random_seed(4)
  m3 = _keras3_bn_net(keras3)
  bn = m3.get_layer("bn")
  bn.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
  bn.moving_variance.assign(np.linspace(0.5, 2, 4).astype("float32"))
  x = tf.random.normal([5, 6, 6, 3], seed=2)

  def grads(context):
    with context():
      with tf.GradientTape() as tape:
        out = m3(x, training=False)
        loss = tf.reduce_sum(tf.square(out))
      return [out] + tape.gradient(loss, m3.trainable_variables)
  for a, b in zip(grads(contextlib.nullcontext),
                  grads(lambda: compat.fused_normalization(m3))):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=2e-5, atol=2e-6)
  infer = tf.function(lambda x: _infer_in(m3, x)).get_concrete_function(x)
  assert "FusedBatchNormV3" in {op.type for op in infer.graph.get_operations()}
  x2 = keras.Input((4, 4, 2))
  m2 = keras.Model(x2, keras.layers.BatchNormalization(name="bn")(x2))
  with compat.fused_normalization(m2):
    assert "call" not in vars(m2.get_layer("bn"))


def _infer_in(model, x):
  with compat.fused_normalization(model):
    return model(x, training=False)
