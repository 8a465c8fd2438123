"""The model registry: ``build(name, num_classes, input_shape, **options)``.

A builder is a function ``fn(num_classes, input_shape, *, option=default, ...)``;
its keyword-only parameters are the model's options (a config's
``model.options`` fields are derived from them: annotate an option whose
default is None with its type, e.g. ``sigma_b: float = None``).

Usage::

    @register("tiny", fixed={"depth": 3})
    def my_builder(num_classes, input_shape, *, depth=3, width=8): ...
    model = build("tiny", 10, (32, 32, 3), width=16)
"""

import inspect
from typing import Any, Callable, Dict, List, Tuple

_REGISTRY: Dict[str, Tuple[Callable, Dict[str, Any]]] = {}


def register(name: str, fixed: Dict[str, Any] = None):
  """Decorator registering ``fn`` under ``name``; ``fixed`` options are preset.

  Example: ``register('resnet32', fixed={'depth': 32})(cifar_resnet)``.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"Model name must be a non-empty string, got {name!r}.")

  def wrap(fn):
    if name in _REGISTRY and _REGISTRY[name][0] is not fn:
      raise ValueError(f"Model {name!r} is already registered. Fix: pick "
                       "another name.")
    _REGISTRY[name] = (fn, dict(fixed or {}))
    return fn
  return wrap


def names() -> List[str]:
  """Sorted names of the registered models."""
  return sorted(_REGISTRY)


def options(name: str) -> Dict[str, Any]:
  """The options of model ``name`` and their defaults."""
  fn, fixed = _lookup(name)
  out = {}
  for p in inspect.signature(fn).parameters.values():
    if p.kind == p.KEYWORD_ONLY and p.name not in fixed:
      out[p.name] = p.default
  return out


def option_types(name: str) -> Dict[str, type]:
  """The type of each option of model ``name``: its annotation, else the type
  of its default (None when neither says; used to type config fields)."""
  fn, fixed = _lookup(name)
  out = {}
  for p in inspect.signature(fn).parameters.values():
    if p.kind == p.KEYWORD_ONLY and p.name not in fixed:
      t = (p.annotation if p.annotation is not p.empty
           and isinstance(p.annotation, type) else None)
      out[p.name] = t or (None if p.default in (None, p.empty)
                          else type(p.default))
  return out


def _lookup(name):
  if name not in _REGISTRY:
    raise ValueError(f"Unknown model {name!r}. Fix: use one of {names()}.")
  return _REGISTRY[name]


def build(name: str, num_classes: int, input_shape, **opts):
  """Builds model ``name`` (a functional keras.Model that outputs logits).

  Example: ``build('resnet32', 10, (32, 32, 3), stable=True)``.
  """
  fn, fixed = _lookup(name)
  valid = options(name)
  bad = sorted(set(opts) - set(valid))
  if bad:
    raise ValueError(f"Unknown option(s) {bad} for model {name!r}. Fix: use "
                     f"only {sorted(valid)}.")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or (
      num_classes < 1):
    raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}. "
                     "Fix: pass the number of labels, e.g. 10.")
  try:
    shape = tuple(int(d) for d in input_shape)
  except (TypeError, ValueError):
    shape = ()
  if not shape or any(d < 1 for d in shape):
    raise ValueError(f"input_shape must be a tuple of positive ints without "
                     f"the batch axis, got {input_shape!r}. Fix: e.g. "
                     "(32, 32, 3).")
  return fn(num_classes, shape, **fixed, **opts)
