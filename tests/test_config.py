"""Tests for sbp_tf.config: schema defaults, validation errors, config files."""

import pathlib

import pytest

from sbp_tf import config as sbp_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO / "configs").glob("*.py"))


def test_defaults_are_the_papers_cifar_schedule():
  c = sbp_config.defaults()
  assert (c.train.epochs, c.train.batch_size, c.train.lr) == (160, 128, 0.1)
  assert (c.train.optimizer, c.train.momentum) == ("sgd", 0.9)
  assert tuple(c.train.lr_decay_at) == (0.5, 0.75)
  assert c.train.lr_decay_factor == 0.1 and c.train.weight_decay == 1e-4
  sbp_config.validate(c)


def test_every_config_file_loads_and_validates():
  assert len(CONFIG_FILES) >= 25
  names = set()
  for path in CONFIG_FILES:
    c = sbp_config.load_file(path)
    names.add((c.dataset.name, c.model.name))
    assert 0 <= c.prune.sparsity < 1, path
  # One file per paper experiment family is present.
  for want in [("cifar10", "resnet104"), ("cifar100", "resnet50"),
               ("cifar10", "vgg16x3"), ("mnist", "vcnn"),
               ("tiny_imagenet", "resnet32"),
               ("imagenet2012", "resnet50_imagenet"),
               ("fashion_mnist", "ffnn"), ("cifar10", "resnet32")]:
    assert want in names, want


def test_stable_config_is_sbp_sr_and_standard_is_snip():
  stable = sbp_config.load_file(REPO / "configs/cifar10_resnet50_stable.py")
  standard = sbp_config.load_file(REPO / "configs/cifar10_resnet50_standard.py")
  assert stable.model.options.stable and not stable.prune.rescale
  assert not standard.model.options.stable and not standard.prune.rescale
  # SBP-SR differs from SNIP by the architecture alone (the paper's).
  assert sbp_config.diff(stable, standard) == ["model.options.stable"]


def test_no_sbp_sr_config_enables_rescaling_and_resnets_state_batch_norm():
  resnets = [p for p in sorted((REPO / "configs").glob("*.py"))
             if "resnet" in p.name]
  assert len(resnets) >= 20
  for path in resnets:
    c = sbp_config.load_file(path)
    assert c.model.options.batch_norm in (True, False), path.name
    if c.model.options.stable:
      assert c.prune.method == "sbp" and not c.prune.rescale, path.name


@pytest.mark.parametrize("field,value,match", [
    ("prune.sparsity", 1.0, r"prune\.sparsity=1\.0 is out of range \[0, 1\)"),
    ("prune.sparsity", -0.1, r"prune\.sparsity=-0\.1 is out of range"),
    ("prune.method", "snap", r"prune\.method='snap' is not a known pruning"),
    ("model.name", "resnet33", r"model\.name='resnet33' is not a known model"),
    ("dataset.name", "svhn", r"dataset\.name='svhn' is not a known dataset"),
    ("train.mixed_precision", "int8", r"train\.mixed_precision='int8'"),
    ("train.lr_decay_at", (0.75, 0.5), r"train\.lr_decay_at"),
    ("train.epochs", 0, r"train\.epochs=0 must be an integer >= 1"),
])
def test_bad_values_name_the_field(field, value, match):
  c = sbp_config.defaults()
  sbp_config.set_field(c, field, value)
  with pytest.raises(ValueError, match=match):
    sbp_config.validate(c)


def test_unknown_fields_are_named_recursively():
  with pytest.raises(ValueError, match=r"unknown field 'train\.epochz'.*"
                     r"unknown field 'model\.options\.foo'"):
    sbp_config.validate({"train": {"epochz": 3},
                         "model": {"options": {"foo": 1}}})
  with pytest.raises(ValueError, match=r"unknown field 'prune\.sparsty'"):
    sbp_config.set_field(sbp_config.defaults(), "prune.sparsty", 0.5)
  with pytest.raises(TypeError, match="ConfigDict or a dict"):
    sbp_config.validate([1, 2])


def test_resolve_fills_defaults_and_keeps_overrides():
  c = sbp_config.resolve({"model": {"name": "ffnn", "options": {"depth": 3}},
                          "train": {"epochs": 2}})
  assert c.train.epochs == 2 and c.model.options.depth == 3
  assert c.train.lr == 0.1 and c.model.options.width is None
  assert sbp_config.diff(c, sbp_config.defaults()) == [
      "model.name", "model.options.depth", "train.epochs"]


def test_load_file_overrides_and_missing_file():
  c = sbp_config.load_file(REPO / "configs/cpu_fashion_mnist_ffnn.py",
                           {"train.epochs": 7, "dataset.limit_train": 100})
  assert (c.train.epochs, c.dataset.limit_train) == (7, 100)
  with pytest.raises(ValueError, match="does not exist"):
    sbp_config.load_file(REPO / "configs/nope.py")
  with pytest.raises(ValueError, match=r"prune\.sparsity"):
    sbp_config.load_file(REPO / "configs/cpu_fashion_mnist_ffnn.py",
                         {"prune.sparsity": 1.5})
