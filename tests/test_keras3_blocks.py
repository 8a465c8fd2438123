"""Keras 3 initializers, StableScale and zoo match the tf_keras ones."""

import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from sbp_tf import initializers as k2_init
from sbp_tf import layers as k2_layers
from sbp_tf import models as k2_models
from sbp_tf import keras3
from sbp_tf.keras3 import initializers as k3_init
from sbp_tf.keras3.layers import StableScale


@pytest.mark.parametrize("make", [
    lambda m: m.Gaussian(1.7, 0.3, seed=4),
    lambda m: m.EdgeOfChaos("tanh", sigma_b=0.2, seed=4),
    lambda m: m.EdgeOfChaos("relu", seed=4),
    lambda m: m.OrderedPhase("tanh", seed=4),
])
def test_seeded_initializers_draw_the_tf_keras_numbers(make):
  k2, k3 = make(k2_init), make(k3_init)
  assert k3.sigma_w == k2.sigma_w and k3.sigma_b == k2.sigma_b
  for shape in [(20, 30), (3, 3, 4, 8)]:
    np.testing.assert_array_equal(np.asarray(k3(shape)),
                                  k2(shape).numpy())
  np.testing.assert_array_equal(np.asarray(k3.bias_initializer()((30,))),
                                k2.bias_initializer()((30,)).numpy())


def test_unseeded_kernel_variance_is_sigma_w2_over_fan_in():
  keras.utils.set_random_seed(0)
  init = k3_init.EdgeOfChaos("tanh", sigma_b=0.2)
  w = np.asarray(init((400, 500)), np.float64)
  # sigma_w^2 / fan_in, the EOC value of eoc.eoc_sigma_w ~ 1.3041^2 / 400.
  assert math.isclose(init.sigma_w, 1.3041, abs_tol=5e-4)
  assert abs(w.var() / (init.sigma_w ** 2 / 400) - 1) < 0.01  # 2e5 draws
  assert abs(w.mean()) < 3 * init.sigma_w / 20 / math.sqrt(2e5)
  keras.utils.set_random_seed(0)
  np.testing.assert_array_equal(np.asarray(init((400, 500))), w)
  dw = k3_init.Gaussian(2.0, depthwise=True)
  assert dw.stddev((3, 3, 16, 1)) == 2.0 / 3.0  # fan_in = 3 * 3


def test_get_and_errors_follow_the_tf_keras_rules():
  for name in k3_init.INIT_NAMES:
    a, b = k3_init.get(name, "tanh"), k2_init.get(name, "tanh")
    assert getattr(a, "sigma_w", None) == getattr(b, "sigma_w", None)
  with pytest.raises(ValueError, match="ordered"):
    k3_init.OrderedPhase("tanh", sigma_w=3.0)
  with pytest.raises(ValueError, match="Unknown init"):
    k3_init.get("xavier")


def test_stable_scale_matches_tf_keras():
  rng = np.random.default_rng(0)
  a, b = (rng.normal(size=(2, 5)).astype("float32") for _ in range(2))
  for n in (1, 4, 15):
    got = np.asarray(StableScale(n)([a, b]))
    np.testing.assert_array_equal(got,
                                  k2_layers.StableScale(n)([a, b]).numpy())
    np.testing.assert_allclose(got, a + b / math.sqrt(n), rtol=1e-6)
  with pytest.raises(ValueError, match="num_blocks"):
    StableScale(0)


def test_zoo_has_the_tf_keras_names_options_and_parameter_counts():
  assert keras3.models.names() == k2_models.names()
  for name in k2_models.names():
    assert keras3.models.options(name) == k2_models.options(name), name
    small = dict(width_multiplier=0.25)
    if name in ("ffnn", "vcnn"):
      small.update(depth=3)
    shape = (8, 8, 3)
    k3 = keras3.models.build(name, 10, shape, **small)
    k2 = k2_models.build(name, 10, shape, **small)
    assert k3.count_params() == k2.count_params(), name
    assert [l.name for l in k3.layers] == [l.name for l in k2.layers], name
    assert type(k3).__module__.startswith("keras.")


def test_keras_file_round_trip_keeps_outputs_and_initializers(tmp_path):
  model = keras3.models.build("resnet_cifar", 10, (8, 8, 3), depth=8,
                              stable=True, width_multiplier=0.25, seed=1)
  path = tmp_path / "m.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
  np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                model.predict(x, verbose=0))
  add = loaded.get_layer("stage2_block1_add")
  assert isinstance(add, StableScale) and add.num_blocks == 3
  init = loaded.get_layer("conv1").kernel_initializer
  assert isinstance(init, k3_init.EdgeOfChaos)
  assert init.sigma_w == model.get_layer("conv1").kernel_initializer.sigma_w


@pytest.mark.parametrize("name,opts", [("ffnn", dict(depth=3)),
                                       ("resnet32", {})])
def test_same_seed_gives_bit_identical_initial_weights(name, opts):
  k3 = keras3.models.build(name, 10, (8, 8, 3), width_multiplier=0.25,
                           seed=7, **opts)
  k2 = k2_models.build(name, 10, (8, 8, 3), width_multiplier=0.25, seed=7,
                       **opts)
  w3, w2 = k3.get_weights(), k2.get_weights()
  assert len(w3) == len(w2) > 0
  for a, b in zip(w3, w2):
    np.testing.assert_array_equal(np.asarray(a), b)
  x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
  np.testing.assert_allclose(np.asarray(k3(x, training=False)),
                             k2(x, training=False).numpy(), rtol=1e-5,
                             atol=1e-5)


def test_one_implementation_serves_both_kerases_under_their_names():
  from sbp_tf.models import registry  # pylint: disable=g-import-not-at-top
  assert isinstance(keras3.models.KERAS3, registry.Registry)
  assert keras3.models.KERAS3_KIT.keras is keras
  for cls in (k3_init.Gaussian, k3_init.GaussianBias, k3_init.EdgeOfChaos,
              k3_init.OrderedPhase, StableScale):
    assert keras.saving.get_registered_name(cls) == (
        f"sbp_tf_keras3>{cls.__name__}")
  assert issubclass(k3_init.EdgeOfChaos, k2_init.EdgeOfChaosMath)
  assert issubclass(StableScale, k2_layers.StableScaleMath)
  bias = k3_init.get("eoc", "tanh", seed=1).bias_initializer()
  assert type(bias) is k3_init.GaussianBias
  assert type(k3_init.bias_for(k3_init.get("glorot"))).__module__.startswith(
      "keras.")
  with pytest.raises(TypeError, match="Keras 3 Initializer"):
    k3_init.get(k2_init.Gaussian())  # a tf_keras initializer is refused

  def tiny(num_classes, input_shape, *, width: int = 4):
    inp = keras.Input(input_shape)
    return keras.Model(inp, keras.layers.Dense(num_classes)(inp))

  keras3.models.register("k3_tiny")(tiny)
  try:  # a Keras 3 builder is this registry's own, not the tf_keras one's
    assert "k3_tiny" in keras3.models.names()
    assert "k3_tiny" not in k2_models.names()
    assert keras3.models.build("k3_tiny", 3, (5,)).count_params() == 18
  finally:
    keras3.models.KERAS3.entries.pop("k3_tiny")


def test_import_sbp_tf_and_its_zoo_import_no_keras3():
  code = ("import sys, sbp_tf, sbp_tf.models; "
          "print(sorted(m for m in sys.modules "
          "if m == 'keras' or m.startswith('keras.')))")
  env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).parents[1]),
             TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_USE_LEGACY_KERAS", None)
  out = subprocess.run([sys.executable, "-c", code], env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip().splitlines()[-1] == "[]"
