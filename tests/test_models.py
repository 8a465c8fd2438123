"""Model zoo: registry, options, parameter counts by formula, save/load."""

import numpy as np
import pytest

from sbp_tf import models
from sbp_tf.compat import keras

EXPECTED_NAMES = {"ffnn", "vcnn", "vgg16", "vgg16x3", "resnet32", "resnet50",
                  "resnet104", "resnet50_imagenet"}


def _ffnn_params(d, depth, w, k):
  return (d + 1) * w + (depth - 1) * (w + 1) * w + (w + 1) * k


def _vcnn_params(c, depth, w, k):
  return (9 * c + 1) * w + (depth - 1) * (9 * w + 1) * w + (w + 1) * k


def _conv(cin, cout, ks, bn):
  # BN adds gamma, beta and the two moving statistics; else a conv bias.
  return ks * ks * cin * cout + (4 * cout if bn else cout)


def _vgg_params(c, widths, k, bn):
  total, cin = 0, c
  for w in widths:
    total += _conv(cin, w, 3, bn)
    cin = w
  return total + (cin + 1) * k


def _resnet_params(c, n, widths, k, bn):
  total = _conv(c, widths[0], 3, bn)
  cin = widths[0]
  for w in widths:
    for _ in range(n):
      total += _conv(cin, w, 3, bn) + _conv(w, w, 3, bn)
      if cin != w:
        total += _conv(cin, w, 1, bn)
      cin = w
  return total + (cin + 1) * k


def _resnet50_imagenet_params(c, k, m=1.0):
  sc = lambda w: max(1, int(round(w * m)))
  total = _conv(c, sc(64), 7, True)
  cin = sc(64)
  for width, n in ((64, 3), (128, 4), (256, 6), (512, 3)):
    w = sc(width)
    for b in range(n):
      total += (_conv(cin, w, 1, True) + _conv(w, w, 3, True)
                + _conv(w, 4 * w, 1, True))
      if b == 0:
        total += _conv(cin, 4 * w, 1, True)
      cin = 4 * w
  return total + (cin + 1) * k


VGG_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_registry_names_and_errors():
  assert EXPECTED_NAMES <= set(models.names())
  with pytest.raises(ValueError, match="Unknown model 'resnet18'.*resnet32"):
    models.build("resnet18", 10, (32, 32, 3))
  with pytest.raises(ValueError, match="Unknown option.*'depth'.*batch_norm"):
    models.build("resnet32", 10, (32, 32, 3), depth=20)
  with pytest.raises(ValueError, match="input_shape must be"):
    models.build("ffnn", 10, (0, 3), depth=1, width=4)
  with pytest.raises(ValueError, match="depth must be 6n\\+2"):
    models.build("resnet_cifar", 10, (8, 8, 3), depth=33)
  with pytest.raises(ValueError, match="Unknown activation 'rectifier'"):
    models.build("vcnn", 10, (8, 8, 3), depth=1, width=4,
                 activation="rectifier")
  assert set(models.options("resnet32")) >= {
      "stable", "batch_norm", "activation", "init", "sigma_b",
      "width_multiplier"}


def test_param_counts_by_formula_full_size():
  assert models.build("ffnn", 10, (28, 28, 1), depth=5, width=300
                      ).count_params() == _ffnn_params(784, 5, 300, 10)
  assert models.build("vcnn", 10, (32, 32, 3), depth=4, width=128
                      ).count_params() == _vcnn_params(3, 4, 128, 10)
  assert models.build("vgg16", 10, (32, 32, 3)).count_params() == _vgg_params(
      3, VGG_WIDTHS, 10, True)
  assert models.build("resnet32", 10, (32, 32, 3)).count_params() == (
      _resnet_params(3, 5, (32, 64, 128), 10, True))
  assert models.build("resnet32", 100, (32, 32, 3), batch_norm=False,
                      stable=True).count_params() == (
                          _resnet_params(3, 5, (32, 64, 128), 100, False))
  # Counts do not depend on the image size; 64x64 keeps the forward cheap.
  m = models.build("resnet50_imagenet", 1000, (64, 64, 3))
  assert m.count_params() == _resnet50_imagenet_params(3, 1000)
  # torchvision's ResNet-50 has 25,557,032 trainable parameters.
  trainable = sum(int(np.prod(v.shape)) for v in m.trainable_weights)
  assert trainable == 25_557_032
  x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
  assert m(x, training=False).shape == (1, 1000)


def test_initializer_kept_on_layers():
  m = models.build("vcnn", 10, (8, 8, 3), depth=3, width=8)
  init = m.get_layer("conv_2").kernel_initializer
  assert init.sigma_w == pytest.approx(1.3041458, rel=1e-6)
  assert init.sigma_b == 0.2
  o = models.build("ffnn", 10, (4,), depth=2, width=8, init="ordered")
  assert o.get_layer("dense_1").kernel_initializer.sigma_w ** 2 == (
      pytest.approx(0.1))
  r = models.build("resnet32", 10, (8, 8, 3), width_multiplier=0.125,
                   stable=True)
  assert r.get_layer("stage2_block1_add").scale == pytest.approx(1 / 15 ** 0.5)
  assert r.get_layer("stage3_block5_add").num_blocks == 15


SMALL = [
    ("ffnn", (6,), dict(depth=3, width=16, activation="elu"), _ffnn_params(
        6, 3, 16, 5)),
    ("vcnn", (8, 8, 3), dict(depth=3, width=8), _vcnn_params(3, 3, 8, 5)),
    ("vgg16", (8, 8, 3), dict(width_multiplier=0.125, batch_norm=False),
     _vgg_params(3, [w // 8 for w in VGG_WIDTHS], 5, False)),
    ("vgg16x3", (8, 8, 3), dict(width_multiplier=1 / 24),
     _vgg_params(3, [w // 8 for w in VGG_WIDTHS], 5, True)),
    ("resnet32", (8, 8, 3), dict(width_multiplier=0.125, stable=True,
                                 activation="tanh"),
     _resnet_params(3, 5, (4, 8, 16), 5, True)),
    ("resnet50", (8, 8, 3), dict(width_multiplier=0.125, batch_norm=False),
     _resnet_params(3, 8, (4, 8, 16), 5, False)),
    ("resnet104", (8, 8, 3), dict(width_multiplier=0.125, stable=True),
     _resnet_params(3, 17, (4, 8, 16), 5, True)),
    ("resnet50_imagenet", (32, 32, 3), dict(width_multiplier=0.125,
                                            stable=True),
     _resnet50_imagenet_params(3, 5, 0.125)),
]


@pytest.mark.parametrize("name,shape,opts,params", SMALL,
                         ids=[s[0] for s in SMALL])
def test_build_forward_save_load(name, shape, opts, params, tmp_path):
  keras.utils.set_random_seed(0)
  model = models.build(name, 5, shape, **opts)
  assert model.count_params() == params
  x = np.random.default_rng(1).normal(size=(2,) + shape).astype("float32")
  y = model(x, training=False).numpy()
  assert y.shape == (2, 5) and np.all(np.isfinite(y))
  path = str(tmp_path / f"{name}.keras")
  model.save(path)
  back = keras.models.load_model(path)
  np.testing.assert_array_equal(back(x, training=False).numpy(), y)
  k = [l for l in back.layers if isinstance(l, keras.layers.Dense)][-1]
  assert k.kernel_initializer.sigma_w == pytest.approx(
      model.layers[-1].kernel_initializer.sigma_w)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5")
def test_h5_round_trip(tmp_path):
  model = models.build("resnet_cifar", 3, (8, 8, 3), depth=8, stable=True,
                       width_multiplier=0.125, init="ordered",
                       activation="tanh")
  x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
  path = str(tmp_path / "m.h5")
  model.save(path)
  back = keras.models.load_model(path, custom_objects=models.custom_objects())
  np.testing.assert_array_equal(back(x, training=False).numpy(),
                                model(x, training=False).numpy())


def test_registry_instances_share_the_zoo_and_keep_their_own_builders():
  from sbp_tf.models import registry  # pylint: disable=g-import-not-at-top
  # The module-level functions are the tf_keras instance's methods.
  assert models.build == registry.TF_KERAS.build
  assert models.register == registry.TF_KERAS.register
  other = registry.Registry(registry.TF_KERAS.kit)
  assert other.names() == sorted(registry.ZOO) == [
      n for n in models.names() if n in registry.ZOO]

  def tiny(num_classes, input_shape, *, width: int = 4):
    inp = keras.Input(input_shape)
    return keras.Model(inp, keras.layers.Dense(num_classes)(inp))

  other.register("tiny")(tiny)
  try:
    assert "tiny" in other.names() and "tiny" not in models.names()
    assert other.options("tiny") == {"width": 4}
    assert other.option_types("tiny") == {"width": int}
    assert other.build("tiny", 3, (5,)).count_params() == 18
    with pytest.raises(ValueError, match="already registered"):
      other.register("resnet32")(tiny)  # zoo names are taken everywhere
  finally:
    other.entries.pop("tiny")
  # The zoo builders take the kit first; options exclude it.
  assert "kit" not in models.options("ffnn")
