"""Experiment configuration: the typed defaults schema and its validation.

Every experiment is an ``ml_collections.ConfigDict`` that starts from
:func:`defaults` (the paper's CIFAR schedule) and overrides a few fields.
Config files under ``configs/`` define ``get_config()``; the binaries accept
``--config.<field>=<value>`` overrides on top.

Usage::

    from sbp_tf import config as sbp_config
    cfg = sbp_config.defaults()
    cfg.model.name = "resnet32"
    cfg.model.options.stable = True
    cfg.prune.method, cfg.prune.sparsity = "sbp", 0.95
    sbp_config.validate(cfg)          # ValueError naming any bad field
    cfg = sbp_config.load_file("configs/cpu_fashion_mnist.py")
"""

import copy
import importlib.util
import json
import math
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Union

import ml_collections
from ml_collections import config_dict

# Names from the interface contract; the live registries are consulted too
# (see _known_models / _known_methods) so new entries validate without edits.
DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "tiny_imagenet",
            "imagenet2012")
MODELS = ("ffnn", "vcnn", "vgg16", "vgg16x3", "resnet32", "resnet50",
          "resnet104", "resnet50_imagenet")
METHODS = ("sbp", "snip", "magnitude", "random", "grasp", "synflow")
MIXED_PRECISION = (None, "float16", "bfloat16")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
OPTIMIZERS = ("sgd", "adam")
SCOPES = ("global", "layerwise")
ON_COLLAPSE = ("warn", "error", "ignore")
# Fields that may change between an interrupted run and its resumption:
# output verbosity, the tflite by-product, and where the data is found (the
# dataset's name and split sizes still have to match).
RESUME_MUTABLE = ("train.verbose", "export_tflite", "dataset.data_dir",
                  "dataset.cache_dir")

_ph = config_dict.placeholder


def defaults() -> ml_collections.ConfigDict:
  """The full config schema with the paper's CIFAR defaults.

  Training defaults follow Hayou et al. (2021): SGD with momentum 0.9,
  batch 128, 160 epochs, learning rate 0.1 multiplied by 0.1 at 50% and 75% of
  training, weight decay 1e-4 (``l2``: a loss term ``wd/2 * sum ||W||^2`` over
  prunable kernels, equivalent to PyTorch's coupled SGD ``weight_decay``).
  Fields whose default is ``None`` are typed placeholders (they accept
  ``--config.<field>=<value>`` overrides of their type).

  Returns:
    A fresh, type-locked ``ConfigDict``.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.export_tflite = True
  c.dataset = ml_collections.ConfigDict(dict(
      name="cifar10",
      data_dir=_ph(str),
      cache_dir=_ph(str),
      limit_train=_ph(int),   # first N training examples (CPU-scale runs)
      limit_test=_ph(int),
      augment=True,
  ))
  c.model = ml_collections.ConfigDict(dict(
      name="resnet32",
      # Passed to sbp_tf.models.build(name, ..., **options); None = the
      # model's default.
      options=ml_collections.ConfigDict(dict(
          init=_ph(str),
          activation=_ph(str),
          sigma_b=_ph(float),
          stable=_ph(bool),
          batch_norm=_ph(bool),
          width_multiplier=_ph(float),
          depth=_ph(int),
          width=_ph(int),
      )),
  ))
  c.prune = ml_collections.ConfigDict(dict(
      method="sbp",
      sparsity=0.9,
      rescale=False,
      scope="global",
      num_batches=1,
      rounds=_ph(int),        # None = the method's default (synflow: 100)
      keep_first=False,
      keep_last=False,
      on_collapse="warn",
      batch_size=_ph(int),    # saliency batch (global); None = train batch
  ))
  c.train = ml_collections.ConfigDict(dict(
      epochs=160,
      batch_size=128,         # global batch (per replica if scaling is on)
      per_replica_batch_scaling=False,
      optimizer="sgd",
      momentum=0.9,
      nesterov=False,
      lr=0.1,
      lr_decay_at=(0.5, 0.75),  # fractions of training
      lr_decay_factor=0.1,
      weight_decay=1e-4,
      weight_decay_mode="l2",
      mixed_precision=_ph(str),
      steps_per_epoch=_ph(int),
      eval_batch_size=_ph(int),
      validate_each_epoch=True,
      verbose=1,
  ))
  return c


def _known_datasets() -> tuple:
  try:  # pylint: disable=g-import-not-at-top
    from sbp_tf import data
    return tuple(sorted(set(DATASETS) | set(data.names())))
  except (ImportError, AttributeError):
    return DATASETS


def _known_models() -> tuple:
  try:  # pylint: disable=g-import-not-at-top
    from sbp_tf import models
    return tuple(sorted(set(MODELS) | set(models.names())))
  except (ImportError, AttributeError):
    return MODELS


def _model_options(name):
  try:  # pylint: disable=g-import-not-at-top
    from sbp_tf import models
    return set(models.options(name))
  except (ImportError, AttributeError, ValueError, KeyError):
    return None  # unknown model (reported separately) or no registry yet


def _known_methods() -> tuple:
  names = set(METHODS)
  try:  # pylint: disable=g-import-not-at-top
    from sbp_tf import pruning
    for attr in ("method_names", "methods", "names"):
      fn = getattr(pruning, attr, None)
      if callable(fn):
        names |= set(fn())
        break
  except (ImportError, AttributeError, TypeError):
    pass
  return tuple(sorted(names))


def _as_dict(config) -> Dict[str, Any]:
  if isinstance(config, config_dict.ConfigDict):
    return config.to_dict()
  if isinstance(config, Mapping):
    return {k: _as_dict(v) if isinstance(v, (Mapping, config_dict.ConfigDict))
            else v for k, v in config.items()}
  raise TypeError(
      f"config must be an ml_collections.ConfigDict or a dict, got "
      f"{type(config).__name__}. Fix: start from sbp_tf.config.defaults().")


def _check_keys(given, schema, prefix, errors):
  for key, value in given.items():
    name = prefix + key
    if key not in schema:
      valid = ", ".join(sorted(schema))
      errors.append(f"unknown field {name!r} (valid fields here: {valid})")
      continue
    if isinstance(schema[key], dict):
      if not isinstance(value, dict):
        errors.append(f"field {name!r} must be a group of fields, got "
                      f"{type(value).__name__}")
      else:
        _check_keys(value, schema[key], name + ".", errors)


def _get(d, dotted):
  for part in dotted.split("."):
    d = d[part]
  return d


def _is_num(x):
  return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate(config) -> None:
  """Checks an experiment config against the schema of :func:`defaults`.

  Checks: every field exists in the schema (recursively), dataset, model and
  pruning method names are known, ``0 <= prune.sparsity < 1``, schedule and
  batch values are in range. Raises before anything is loaded or written.

  Args:
    config: a ``ConfigDict`` (or nested dict) to check.

  Raises:
    ValueError: naming each offending field and how to fix it.
    TypeError: if ``config`` is not a ConfigDict/dict.

  Example::

      cfg = defaults(); cfg.prune.sparsity = 1.5
      validate(cfg)   # ValueError: prune.sparsity=1.5 is out of range ...
  """
  given = _as_dict(config)
  schema = defaults().to_dict()
  errors: List[str] = []
  _check_keys(given, schema, "", errors)
  if errors:
    raise ValueError("Invalid config: " + "; ".join(errors) +
                     ". Fix: remove or rename the field (see "
                     "sbp_tf.config.defaults() for the schema).")
  # Missing fields are filled from defaults so partial dicts validate too.
  full = _merge(schema, given)

  def need(cond, field, msg):
    if not cond:
      errors.append(f"{field}={_get(full, field)!r} {msg}")

  datasets = _known_datasets()
  need(full["dataset"]["name"] in datasets, "dataset.name",
       f"is not a known dataset; use one of {', '.join(datasets)}")
  models = _known_models()
  need(full["model"]["name"] in models, "model.name",
       f"is not a known model; use one of {', '.join(models)}")
  opts = {k: v for k, v in full["model"]["options"].items() if v is not None}
  valid_opts = _model_options(full["model"]["name"])
  for k in sorted(opts):
    need(valid_opts is None or k in valid_opts, f"model.options.{k}",
         f"is not an option of model {full['model']['name']!r}; its options "
         f"are {', '.join(sorted(valid_opts or ()))} (leave the others None)")
  methods = _known_methods()
  need(full["prune"]["method"] in methods, "prune.method",
       f"is not a known pruning method; use one of {', '.join(methods)}")
  s = full["prune"]["sparsity"]
  need(_is_num(s) and 0.0 <= s < 1.0 and not math.isnan(s), "prune.sparsity",
       "is out of range [0, 1) (fraction of weights removed, e.g. 0.9)")
  for field in ("prune.num_batches", "train.epochs",
                "train.batch_size"):
    v = _get(full, field)
    need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, field,
         "must be an integer >= 1")
  for field in ("prune.rounds", "prune.batch_size", "train.steps_per_epoch",
                "train.eval_batch_size", "dataset.limit_train",
                "dataset.limit_test"):
    v = _get(full, field)
    need(v is None or (isinstance(v, int) and not isinstance(v, bool)
                       and v >= 1), field, "must be None or an integer >= 1")
  need(full["prune"]["scope"] in SCOPES, "prune.scope",
       f"must be one of {SCOPES}")
  need(full["prune"]["on_collapse"] in ON_COLLAPSE, "prune.on_collapse",
       f"must be one of {ON_COLLAPSE}")
  need(_is_num(full["train"]["lr"]) and full["train"]["lr"] > 0, "train.lr",
       "must be a positive number")
  need(_is_num(full["train"]["weight_decay"]) and
       full["train"]["weight_decay"] >= 0, "train.weight_decay",
       "must be a number >= 0")
  need(_is_num(full["train"]["momentum"]) and
       0 <= full["train"]["momentum"] < 1, "train.momentum",
       "must be in [0, 1)")
  need(_is_num(full["train"]["lr_decay_factor"]) and
       0 < full["train"]["lr_decay_factor"] <= 1, "train.lr_decay_factor",
       "must be in (0, 1]")
  at = full["train"]["lr_decay_at"]
  need(isinstance(at, (list, tuple)) and all(_is_num(a) and 0 < a < 1
                                              for a in at)
       and list(at) == sorted(at), "train.lr_decay_at",
       "must be increasing fractions of training in (0, 1), e.g. (0.5, 0.75)")
  need(full["train"]["mixed_precision"] in MIXED_PRECISION,
       "train.mixed_precision", "must be None, 'float16' or 'bfloat16'")
  need(full["train"]["weight_decay_mode"] in WEIGHT_DECAY_MODES,
       "train.weight_decay_mode", f"must be one of {WEIGHT_DECAY_MODES}")
  need(full["train"]["optimizer"] in OPTIMIZERS, "train.optimizer",
       f"must be one of {OPTIMIZERS}")
  need(full["train"]["verbose"] in (0, 1, 2), "train.verbose",
       "must be 0 (silent), 1 (progress bar) or 2 (one line per epoch)")
  if errors:
    raise ValueError("Invalid config: " + "; ".join(errors) + ".")


def _merge(base: dict, over: dict) -> dict:
  out = copy.deepcopy(base)
  for k, v in over.items():
    if isinstance(v, dict) and isinstance(out.get(k), dict):
      out[k] = _merge(out[k], v)
    else:
      out[k] = v
  return out


def resolve(config) -> ml_collections.ConfigDict:
  """Validates ``config`` and returns it completed with every default field.

  Example::

      cfg = resolve({"model": {"name": "ffnn"}, "train": {"epochs": 2}})
      cfg.train.lr   # 0.1, from the defaults
  """
  validate(config)
  full = _merge(defaults().to_dict(), _as_dict(config))
  out = defaults()
  _assign(out, full)
  return out


def _assign(cfg, values):
  for k, v in values.items():
    if isinstance(v, dict):
      _assign(cfg[k], v)
    else:
      if isinstance(v, list):
        v = tuple(v)
      with cfg.ignore_type():
        setattr(cfg, k, v)


def to_dict(config) -> Dict[str, Any]:
  """Plain JSON-serialisable nested dict of a config (tuples become lists)."""
  return json.loads(json.dumps(_as_dict(config)))


def diff(a, b, ignore=RESUME_MUTABLE) -> List[str]:
  """Dotted names of the fields that differ between two configs.

  Example::

      diff(defaults(), other)   # e.g. ['prune.sparsity', 'train.lr']
  """
  out = []

  def walk(x, y, prefix):
    for k in sorted(set(x) | set(y)):
      name = prefix + k
      if name in ignore:
        continue
      xv, yv = x.get(k, "<missing>"), y.get(k, "<missing>")
      if isinstance(xv, dict) and isinstance(yv, dict):
        walk(xv, yv, name + ".")
      elif xv != yv:
        out.append(name)

  walk(to_dict(a), to_dict(b), "")
  return out


def load_file(path: Union[str, pathlib.Path],
              overrides: Optional[Mapping[str, Any]] = None
              ) -> ml_collections.ConfigDict:
  """Loads ``get_config()`` from a config file, applies overrides, validates.

  Args:
    path: a ``configs/<name>.py`` file defining ``get_config()``.
    overrides: optional ``{"train.epochs": 2, ...}`` dotted-field overrides.

  Returns:
    The resolved, validated config.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"config file {str(path)!r} does not exist. Fix: pass a "
                     "path such as configs/cpu_fashion_mnist.py.")
  spec = importlib.util.spec_from_file_location(
      "sbp_config_" + path.stem, str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path} defines no get_config(). Fix: add "
                     "`def get_config(): return ConfigDict`.")
  cfg = module.get_config()
  for dotted, value in (overrides or {}).items():
    set_field(cfg, dotted, value)
  return resolve(cfg)


def set_field(config, dotted: str, value) -> None:
  """Sets ``config.<dotted>`` = value, raising ValueError for unknown fields."""
  parts = dotted.split(".")
  node = config
  for i, part in enumerate(parts):
    if part not in node:
      raise ValueError(
          f"unknown field {'.'.join(parts[:i + 1])!r}. Fix: use one of "
          f"{', '.join(sorted(node.keys()))}.")
    if i == len(parts) - 1:
      with node.ignore_type():
        setattr(node, part, value)
    else:
      node = node[part]


def experiment(dataset: str, model: str, *, method: str = "sbp",
               sparsity: float = 0.9, rescale: bool = False,
               **model_options) -> ml_collections.ConfigDict:
  """Defaults with the dataset, model, pruning fields set (for configs/*.py).

  Per-dataset schedules: CIFAR 160 epochs (the paper's), MNIST-style 20
  epochs, Tiny ImageNet 200 epochs, ImageNet 90 epochs at batch 256 with
  decay at 1/3 and 2/3; all from ``defaults()`` otherwise.

  Example::

      def get_config():
        return experiment("cifar10", "resnet32", stable=True, rescale=True)
  """
  c = defaults()
  c.dataset.name = dataset
  c.model.name = model
  for k, v in model_options.items():
    set_field(c.model.options, k, v)
  c.prune.method, c.prune.sparsity, c.prune.rescale = method, sparsity, rescale
  if dataset in ("mnist", "fashion_mnist"):
    c.train.epochs = 20
    c.dataset.augment = False
  elif dataset == "tiny_imagenet":
    c.train.epochs = 200
  elif dataset == "imagenet2012":
    c.train.epochs, c.train.batch_size = 90, 256
    c.train.lr_decay_at = (1 / 3, 2 / 3)
  return c
