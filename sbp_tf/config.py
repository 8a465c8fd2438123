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

MIXED_PRECISION = (None, "float16", "bfloat16")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
OPTIMIZERS = ("sgd", "adam")
# Which Keras trains the experiment: tf_keras (tfmot wrappers) or Keras 3
# (sbp_tf.keras3, masks as kernel constraints).
FRAMEWORKS = ("tf_keras", "keras3")
DEFAULT_FRAMEWORK = "tf_keras"
# Model options the experiment sets itself (config.seed seeds every model).
EXPERIMENT_SET_OPTIONS = ("seed",)
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
  c.export_tflite = False  # opt-in: a training run exports only when asked
  # tf_keras: the tfmot path; keras3: sbp_tf.keras3 (see docs/training.md).
  c.framework = DEFAULT_FRAMEWORK
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
      # model's default. One field per option of any registered model.
      options=_options_group(_model_option_types()),
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
      # Conventions (docs/pruning.md, "Conventions"); None = prune's default.
      scoring_mode=_ph(str),  # 'training' (batch stats) | 'inference'
      count_rule=_ph(str),    # 'round' | 'floor_pruned' (kept per round)
      # The method's own parameters (e.g. grasp's temperature), passed to
      # prune(..., **options); None = the method's default. One field per
      # parameter of any registered method.
      options=_options_group(_method_option_types()),
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


class ConfigError(ValueError):
  """An invalid experiment config; the message names the field and the fix."""


def _merged_types(per_name: Dict[str, Dict[str, Any]], kind: str
                  ) -> Dict[str, Any]:
  """Union of the ``option -> type`` maps of every registered ``kind``."""
  out: Dict[str, Any] = {}
  for name, types in sorted(per_name.items()):
    for opt, t in types.items():
      if out.get(opt) is not None and t is not None and out[opt] is not t:
        raise TypeError(
            f"{kind} option {opt!r} is a {t.__name__} in {name!r} but a "
            f"{out[opt].__name__} elsewhere; config fields need one type. "
            "Fix: rename the option or give it the same type.")
      if out.get(opt) is None:
        out[opt] = t
  return out


def _model_option_types() -> Dict[str, Any]:
  from sbp_tf import models  # pylint: disable=g-import-not-at-top
  types = _merged_types({n: models.option_types(n) for n in models.names()},
                        "model")
  return {k: v for k, v in types.items() if k not in EXPERIMENT_SET_OPTIONS}


def _method_option_types() -> Dict[str, Any]:
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  return _merged_types({n: pruning.option_types(n)
                        for n in pruning.methods()}, "pruning method")


def _options_group(types: Dict[str, Any]) -> ml_collections.ConfigDict:
  """A ConfigDict of typed None placeholders, one per option (untyped
  options, whose type nothing states, take any value)."""
  group = ml_collections.ConfigDict()
  for opt, t in sorted(types.items()):
    setattr(group, opt, _ph(t) if t is not None else None)
  return group


def _known_datasets() -> tuple:
  from sbp_tf import data  # pylint: disable=g-import-not-at-top
  return tuple(data.names())


def _known_models() -> tuple:
  from sbp_tf import models  # pylint: disable=g-import-not-at-top
  return tuple(models.names())


def _model_options(name) -> Optional[set]:
  from sbp_tf import models  # pylint: disable=g-import-not-at-top
  if name not in models.names():
    return None  # reported as an unknown model
  return set(models.options(name)) - set(EXPERIMENT_SET_OPTIONS)


def _method_options(name) -> Optional[set]:
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  if name not in pruning.methods():
    return None  # reported as an unknown method
  return set(pruning.method_options(name))


def _known_methods() -> tuple:
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  return tuple(pruning.methods())


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
    ConfigError (a ValueError): naming each offending field and the fix.
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
    raise ConfigError("Invalid config: " + "; ".join(errors) +
                     ". Fix: remove or rename the field (see "
                     "sbp_tf.config.defaults() for the schema).")
  # Missing fields are filled from defaults so partial dicts validate too.
  full = _merge(schema, given)

  def need(cond, field, msg):
    if not cond:
      errors.append(f"{field}={_get(full, field)!r} {msg}")

  for check in (_check_names, _check_options, _check_model_values,
                _check_prune, _check_train, _check_framework):
    check(full, need)
  if errors:
    raise ConfigError("Invalid config: " + "; ".join(errors) + ". Fix: set "
                     "each field named to a valid value (command line: "
                     "--config.<field>=<value>).")


def _check_names(full, need) -> None:
  """Dataset, model and method names are registered."""
  datasets = _known_datasets()
  need(full["dataset"]["name"] in datasets, "dataset.name",
       f"is not a known dataset; use one of {', '.join(datasets)}")
  models = _known_models()
  need(full["model"]["name"] in models, "model.name",
       f"is not a known model; use one of {', '.join(models)}")
  methods = _known_methods()
  need(full["prune"]["method"] in methods, "prune.method",
       f"is not a known pruning method; use one of {', '.join(methods)}")


def _check_options(full, need) -> None:
  """Set (non-None) model and method options belong to the chosen one."""
  for group, kind, valid_of in (("model", "model", _model_options),
                                ("prune", "pruning method", _method_options)):
    name = full[group]["name" if group == "model" else "method"]
    valid = valid_of(name)
    opts = {k: v for k, v in full[group]["options"].items() if v is not None}
    for k in sorted(opts):
      need(valid is None or k in valid, f"{group}.options.{k}",
           f"is not an option of {kind} {name!r}; its options are "
           f"{', '.join(sorted(valid or ())) or 'none'} (leave the others "
           "None)")


# Ranges of the zoo's numeric model options (the builders check them too,
# but only once the run has started): field -> (test, what it must be).
_MODEL_VALUES = {
    "depth": (lambda v: isinstance(v, int) and not isinstance(v, bool)
              and v >= 1, "must be an integer >= 1"),
    "width": (lambda v: isinstance(v, int) and not isinstance(v, bool)
              and v >= 1, "must be an integer >= 1"),
    "width_multiplier": (lambda v: _is_num(v) and v > 0,
                         "must be a number > 0 (e.g. 0.25)"),
    "sigma_b": (lambda v: _is_num(v) and v >= 0, "must be a number >= 0"),
}


def _check_model_values(full, need) -> None:
  """The set (non-None) numeric model options are in range."""
  for opt, (ok, msg) in _MODEL_VALUES.items():
    v = full["model"]["options"].get(opt)
    if v is not None:
      need(ok(v), f"model.options.{opt}", msg)


def _check_prune(full, need) -> None:
  """Sparsity, counts, scope and collapse policy."""
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  s = full["prune"]["sparsity"]
  need(_is_num(s) and 0.0 <= s < 1.0 and not math.isnan(s), "prune.sparsity",
       "is out of range [0, 1) (fraction of weights removed, e.g. 0.9)")
  for field in ("prune.num_batches", "train.epochs", "train.batch_size"):
    v = _get(full, field)
    need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, field,
         "must be an integer >= 1")
  for field in ("prune.rounds", "prune.batch_size", "train.steps_per_epoch",
                "train.eval_batch_size", "dataset.limit_train",
                "dataset.limit_test"):
    v = _get(full, field)
    need(v is None or (isinstance(v, int) and not isinstance(v, bool)
                       and v >= 1), field, "must be None or an integer >= 1")
  need(full["prune"]["scope"] in pruning.SCOPES, "prune.scope",
       f"must be one of {pruning.SCOPES}")
  need(full["prune"]["on_collapse"] in pruning.ON_COLLAPSE,
       "prune.on_collapse", f"must be one of {pruning.ON_COLLAPSE}")
  from sbp_tf.pruning import conventions  # pylint: disable=g-import-not-at-top
  for field, values in (("scoring_mode", conventions.SCORING_MODES),
                        ("count_rule", conventions.COUNT_RULES)):
    v = full["prune"].get(field)
    need(v is None or v in values, f"prune.{field}",
         f"must be None (the default) or one of {values}")


def _check_train(full, need) -> None:
  """Optimizer, schedule, precision and verbosity."""
  t = full["train"]
  need(_is_num(t["lr"]) and t["lr"] > 0, "train.lr",
       "must be a positive number")
  need(_is_num(t["weight_decay"]) and t["weight_decay"] >= 0,
       "train.weight_decay", "must be a number >= 0")
  need(_is_num(t["momentum"]) and 0 <= t["momentum"] < 1, "train.momentum",
       "must be in [0, 1)")
  need(_is_num(t["lr_decay_factor"]) and 0 < t["lr_decay_factor"] <= 1,
       "train.lr_decay_factor", "must be in (0, 1]")
  at = t["lr_decay_at"]
  need(isinstance(at, (list, tuple)) and all(_is_num(a) and 0 < a < 1
                                              for a in at)
       and list(at) == sorted(at), "train.lr_decay_at",
       "must be increasing fractions of training in (0, 1), e.g. (0.5, 0.75)")
  need(t["mixed_precision"] in MIXED_PRECISION, "train.mixed_precision",
       "must be None, 'float16' or 'bfloat16'")
  need(t["weight_decay_mode"] in WEIGHT_DECAY_MODES, "train.weight_decay_mode",
       f"must be one of {WEIGHT_DECAY_MODES}")
  need(t["optimizer"] in OPTIMIZERS, "train.optimizer",
       f"must be one of {OPTIMIZERS}")
  need(t["verbose"] in (0, 1, 2), "train.verbose",
       "must be 0 (silent), 1 (progress bar) or 2 (one line per epoch)")


def _check_framework(full, need) -> None:
  """The framework is known; Keras 3 runs have no mixed precision."""
  fw = full["framework"]
  need(fw in FRAMEWORKS, "framework", f"must be one of {FRAMEWORKS}")
  if fw == "keras3":
    need(full["train"]["mixed_precision"] is None, "train.mixed_precision",
         "is not supported with framework='keras3' (it trains in float32). "
         "Fix: leave it None, or use framework='tf_keras'")


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
  """Plain JSON-serialisable nested dict of a config (tuples become lists).

  ``framework`` is left out when it is the default (tf_keras): the stored
  configs of runs written before the field existed (workdirs, the committed
  tables' JSON) stay identical, so they still resume and match.
  """
  out = json.loads(json.dumps(_as_dict(config)))
  if out.get("framework", DEFAULT_FRAMEWORK) == DEFAULT_FRAMEWORK:
    out.pop("framework", None)
  return out


_MISSING = "<missing>"


def _unset(v) -> bool:
  """Missing, None, or a group of only such fields: a field that a config
  written before the field existed lacks is the same as an unset one."""
  if isinstance(v, dict):
    return all(_unset(x) for x in v.values())
  return v is None or v == _MISSING


def diff(a, b, ignore=RESUME_MUTABLE) -> List[str]:
  """Dotted names of the fields that differ between two configs.

  A field absent from one config and unset (None) in the other is no
  difference (e.g. an option added to the schema after a run was written).

  Example::

      diff(defaults(), other)   # e.g. ['prune.sparsity', 'train.lr']
  """
  out = []

  def walk(x, y, prefix):
    for k in sorted(set(x) | set(y)):
      name = prefix + k
      if name in ignore:
        continue
      xv, yv = x.get(k, _MISSING), y.get(k, _MISSING)
      if isinstance(xv, dict) and isinstance(yv, dict):
        walk(xv, yv, name + ".")
      elif xv != yv and not (_unset(xv) and _unset(yv)):
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
