"""The model registry: ``build(name, num_classes, input_shape, **options)``.

A builder is a function ``fn(num_classes, input_shape, *, option=default, ...)``;
its keyword-only parameters are the model's options (a config's
``model.options`` fields are derived from them: annotate an option whose
default is None with its type, e.g. ``sigma_b: float = None``).

One :class:`Registry` implementation serves both Keras versions: the
module-level ``register/names/options/option_types/build`` are bound to the
tf_keras instance :data:`TF_KERAS`, and :mod:`sbp_tf.keras3.models` makes
the Keras 3 one. The paper's zoo is written once: its builders take a
:class:`sbp_tf.models._common.Kit` first (``fn(kit, num_classes,
input_shape, *, ...)``), are added with :func:`zoo` to :data:`ZOO`, and
every registry serves them with its own kit.

Usage::

    @register("tiny", fixed={"depth": 3})
    def my_builder(num_classes, input_shape, *, depth=3, width=8): ...
    model = build("tiny", 10, (32, 32, 3), width=16)
"""

import functools
import inspect
from typing import Any, Callable, Dict, List, Tuple

from sbp_tf.models import _common

# name -> (builder(kit, num_classes, input_shape, *, ...), fixed options).
ZOO: Dict[str, Tuple[Callable, Dict[str, Any]]] = {}


def _check_name(name) -> None:
  if not isinstance(name, str) or not name:
    raise ValueError(f"Model name must be a non-empty string, got {name!r}.")


def _taken(name, fn, *tables) -> None:
  for table in tables:
    if name in table and table[name][0] is not fn:
      raise ValueError(f"Model {name!r} is already registered. Fix: pick "
                       "another name.")


def zoo(name: str, fixed: Dict[str, Any] = None):
  """Decorator adding a kit builder ``fn(kit, num_classes, input_shape, *,
  ...)`` to the zoo that every :class:`Registry` serves.

  Example: ``zoo('resnet32', fixed={'depth': 32})(cifar_resnet)``.
  """
  _check_name(name)

  def wrap(fn):
    _taken(name, fn, ZOO)
    ZOO[name] = (fn, dict(fixed or {}))
    return fn
  return wrap


class Registry:
  """Named model builders for one Keras version: the zoo, built with
  ``kit``, plus the builders registered on this instance.

  Args:
    kit: the :class:`~sbp_tf.models._common.Kit` the zoo builders get.
  """

  def __init__(self, kit):
    self.kit = kit
    # Builders registered here: name -> (fn(num_classes, input_shape, *,
    # ...), fixed options).
    self.entries: Dict[str, Tuple[Callable, Dict[str, Any]]] = {}

  def register(self, name: str, fixed: Dict[str, Any] = None):
    """Decorator registering ``fn`` under ``name``; ``fixed`` options are preset.

    Example: ``register('resnet32', fixed={'depth': 32})(cifar_resnet)``.
    """
    _check_name(name)

    def wrap(fn):
      _taken(name, fn, ZOO, self.entries)
      self.entries[name] = (fn, dict(fixed or {}))
      return fn
    return wrap

  def names(self) -> List[str]:
    """Sorted names of the registered models."""
    return sorted(set(ZOO) | set(self.entries))

  def _lookup(self, name):
    """``(fn(num_classes, input_shape, **options), fixed)`` of ``name``."""
    if name in self.entries:
      return self.entries[name]
    if name in ZOO:
      fn, fixed = ZOO[name]
      return functools.partial(fn, self.kit), fixed
    raise ValueError(f"Unknown model {name!r}. Fix: use one of "
                     f"{self.names()}.")

  def _option_params(self, name):
    fn, fixed = self._lookup(name)
    return [p for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name not in fixed]

  def options(self, name: str) -> Dict[str, Any]:
    """The options of model ``name`` and their defaults."""
    return {p.name: p.default for p in self._option_params(name)}

  def option_types(self, name: str) -> Dict[str, type]:
    """The type of each option of model ``name``: its annotation, else the
    type of its default (None when neither says; used to type config
    fields)."""
    out = {}
    for p in self._option_params(name):
      t = (p.annotation if p.annotation is not p.empty
           and isinstance(p.annotation, type) else None)
      out[p.name] = t or (None if p.default in (None, p.empty)
                          else type(p.default))
    return out

  def build(self, name: str, num_classes: int, input_shape, **opts):
    """Builds model ``name`` (a functional keras.Model that outputs logits).

    Raises:
      ValueError: unknown name or option, bad ``num_classes``/``input_shape``.

    Example: ``build('resnet32', 10, (32, 32, 3), stable=True)``.
    """
    fn, fixed = self._lookup(name)
    valid = self.options(name)
    bad = sorted(set(opts) - set(valid))
    if bad:
      raise ValueError(f"Unknown option(s) {bad} for model {name!r}. Fix: use "
                       f"only {sorted(valid)}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or (
        num_classes < 1):
      raise ValueError(f"num_classes must be an int >= 1, got "
                       f"{num_classes!r}. Fix: pass the number of labels, "
                       "e.g. 10.")
    return fn(num_classes, _input_shape(input_shape), **fixed, **opts)


def _input_shape(input_shape) -> tuple:
  """``input_shape`` as a tuple of positive ints (no batch axis), or raises."""
  try:
    shape = tuple(int(d) for d in input_shape)
  except (TypeError, ValueError):
    shape = ()
  if not shape or any(d < 1 for d in shape):
    raise ValueError(f"input_shape must be a tuple of positive ints without "
                     f"the batch axis, got {input_shape!r}. Fix: e.g. "
                     "(32, 32, 3).")
  return shape


TF_KERAS = Registry(_common.TF_KERAS_KIT)
_REGISTRY = TF_KERAS.entries  # the tf_keras builders registered by users

register = TF_KERAS.register
names = TF_KERAS.names
options = TF_KERAS.options
option_types = TF_KERAS.option_types
build = TF_KERAS.build
