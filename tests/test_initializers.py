"""Initializers: empirical variances, fan-in rules, serialization."""

import math

import numpy as np
import pytest

from sbp_tf import eoc
from sbp_tf import initializers as inits
from sbp_tf.compat import keras


@pytest.mark.parametrize("shape,fan", [((400, 300), 400),
                                       ((3, 3, 16, 64), 144),
                                       ((5, 32, 50), 160),
                                       ((3, 3, 3, 8, 40), 216)])
def test_empirical_std_is_sigma_w_over_sqrt_fan_in(shape, fan):
  init = inits.EdgeOfChaos("tanh", sigma_b=0.2, seed=3)
  w = init(shape).numpy()
  assert w.shape == shape
  expected = eoc.eoc_sigma_w("tanh", 0.2) / math.sqrt(fan)
  assert w.std() == pytest.approx(expected, rel=0.03)
  assert abs(w.mean()) < 4 * expected / math.sqrt(w.size)


def test_depthwise_fan_in_excludes_channels():
  init = inits.Gaussian(2.0, depthwise=True, seed=1)
  w = init((3, 3, 64, 2)).numpy()
  assert w.std() == pytest.approx(2.0 / 3.0, rel=0.05)  # fan_in = 9
  assert inits.fan_in((3, 3, 64, 2), depthwise=True) == 9


def test_bias_initializers():
  b = inits.EdgeOfChaos("elu", sigma_b=0.2, seed=2).bias_initializer()
  v = b((20000,)).numpy()
  assert v.std() == pytest.approx(0.2, rel=0.03)
  z = inits.EdgeOfChaos("relu").bias_initializer()((50,)).numpy()
  assert np.all(z == 0)


def test_ordered_and_defaults():
  o = inits.OrderedPhase("tanh")
  assert o.sigma_w ** 2 == pytest.approx(0.1) and o.sigma_b == 1.0
  with pytest.raises(ValueError, match="'chaotic' phase"):
    inits.OrderedPhase("tanh", sigma_w=2.0)
  assert inits.EdgeOfChaos("relu").sigma_w == pytest.approx(math.sqrt(2))
  assert inits.EdgeOfChaos("tanh").sigma_b == 0.2
  assert inits.get("he").sigma_w == pytest.approx(math.sqrt(2))
  with pytest.raises(ValueError, match="Unknown init 'kaiming'"):
    inits.get("kaiming")
  with pytest.raises(ValueError, match="no fan-in axis"):
    inits.Gaussian(1.0)((10,))


def test_seeded_is_reproducible_and_unseeded_differs():
  a = inits.Gaussian(1.0, seed=5)((8, 8)).numpy()
  assert np.array_equal(a, inits.Gaussian(1.0, seed=5)((8, 8)).numpy())
  u = inits.Gaussian(1.0)
  assert not np.array_equal(u((8, 8)).numpy(), u((8, 8)).numpy())


@pytest.mark.parametrize("init", [inits.EdgeOfChaos("elu", sigma_b=0.2),
                                  inits.OrderedPhase("relu"),
                                  inits.Gaussian(1.7, 0.1, seed=4),
                                  inits.GaussianBias(0.3)])
def test_config_round_trip(init):
  config = keras.initializers.serialize(init)
  assert config["registered_name"].startswith("sbp_tf>")
  back = keras.initializers.deserialize(config)
  assert type(back) is type(init)
  assert back.get_config() == init.get_config()


def test_classes_are_the_shared_formulas_on_tf_keras_under_their_names():
  # One implementation: the tf_keras classes add only a base and the draws.
  for cls, math_cls in [(inits.GaussianBias, inits.GaussianBiasMath),
                        (inits.Gaussian, inits.GaussianMath),
                        (inits.EdgeOfChaos, inits.EdgeOfChaosMath),
                        (inits.OrderedPhase, inits.OrderedPhaseMath)]:
    assert issubclass(cls, math_cls)
    assert issubclass(cls, keras.initializers.Initializer)
    # Saved files name them so; renaming would break loading old files.
    assert keras.utils.get_registered_name(cls) == f"sbp_tf>{cls.__name__}"
    assert keras.utils.get_custom_objects()[cls.__name__] is cls
  bias = inits.get("eoc", "tanh", seed=2).bias_initializer()
  assert type(bias) is inits.GaussianBias and bias.seed == 2
  assert isinstance(inits.bias_for(inits.get("glorot")),
                    keras.initializers.Zeros)
  with pytest.raises(TypeError, match="keras Initializer"):
    inits.get(3)
