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
