"""The class of a model from ``sbp_tf.tfmot.wrap``: its two mistakes get one line.

A wrapped functional or Sequential model becomes a :class:`WrappedFunctional`
or :class:`WrappedSequential`: the same Keras model (the same layers, config
and weights) with two checks that replace walls of text by one line naming
the fix:

* ``fit`` without tfmot's ``UpdatePruningStep`` among the callbacks raises
  ``ValueError: ... Fix: pass callbacks=sbp_tf.tfmot.callbacks() ...``
  before any step runs (tfmot alone fails inside the first train step with a
  graph error of ~50 lines that never names our callbacks);
* plain ``keras.models.load_model`` of a saved wrapped ``.keras`` file finds
  this class (importable from the module the file names), which
  raises ``ValueError: ... Fix: load it with sbp_tf.tfmot.load_model(path)``
  when tfmot's wrapper is not among the custom objects (Keras would stop
  later with ``'str' object is not callable`` or ``The added layer must be an
  instance of class Layer``).

Nothing global changes: only models that hold tfmot wrappers get the class,
and a stripped model (``sbp_tf.tfmot.strip``) is a plain Keras model again.

Usage::

    model = guard.guard(wrapped)      # wrap() and load_model() do it
"""

import inspect

from sbp_tf import compat, masking
from sbp_tf.compat import keras

import tensorflow_model_optimization as tfmot_lib

__all__ = ["WrappedFunctional", "WrappedSequential", "guard",
           "has_tfmot_wrappers"]

_WRAPPER = "PruneLowMagnitude"
_FIT_PARAMS = inspect.signature(keras.Model.fit)


def has_tfmot_wrappers(model) -> bool:
  """Whether ``model`` (nested models included) holds a tfmot pruning wrapper."""
  return any(hasattr(layer, "pruning_vars") and
             isinstance(layer, keras.layers.Wrapper)
             for layer in masking.walk_layers(model))


def _check_callbacks(model, args, kwargs) -> None:
  """Raises one line if ``fit(*args, **kwargs)`` lacks ``UpdatePruningStep``."""
  bound = _FIT_PARAMS.bind(model, *args, **kwargs)
  given = bound.arguments.get("callbacks") or []
  given = getattr(given, "callbacks", given)  # a keras CallbackList
  if any(isinstance(c, tfmot_lib.sparsity.keras.UpdatePruningStep)
         for c in given):
    return
  raise ValueError(
      f"fit on {model.name!r}, a model from sbp_tf.tfmot.wrap, lacks tfmot's "
      "UpdatePruningStep callback (its wrappers refuse to train without it). "
      "Fix: pass callbacks=sbp_tf.tfmot.callbacks() (plus your own: "
      "sbp_tf.tfmot.callbacks() + [...]).")


def _check_loadable(config, custom_objects) -> None:
  """Raises one line if tfmot's wrapper cannot be found to rebuild ``config``."""
  known = keras.utils.get_registered_object(_WRAPPER, custom_objects or {})
  if known is None and _WRAPPER in str(config):
    raise ValueError(
        "This file holds a model from sbp_tf.tfmot.wrap (tfmot "
        "PruneLowMagnitude wrappers, FixedMask schedules), which plain "
        "keras.models.load_model cannot rebuild. Fix: load it with "
        "sbp_tf.tfmot.load_model(path) (or load the stripped model).")


class _Guarded:
  """The two checks, mixed into Keras' Functional and Sequential."""

  def fit(self, *args, **kwargs):  # pylint: disable=missing-function-docstring
    if has_tfmot_wrappers(self):
      _check_callbacks(self, args, kwargs)
    return super().fit(*args, **kwargs)

  fit.__doc__ = keras.Model.fit.__doc__

  @classmethod
  def from_config(cls, config, custom_objects=None):
    _check_loadable(config, custom_objects)
    return super().from_config(config, custom_objects=custom_objects)


# Not registered with Keras: a .keras file names this module, which Keras
# imports to find the class; a registered class would change how a SavedModel
# revives (Keras then rebuilds it from config or not at all).
class WrappedFunctional(_Guarded, compat.functional_class()):
  """A functional model holding tfmot wrappers (see module doc)."""

  stripped_class = compat.functional_class()  # what masking.strip returns


class WrappedSequential(_Guarded, keras.Sequential):
  """A Sequential model holding tfmot wrappers (see module doc)."""

  stripped_class = keras.Sequential


def guard(model):
  """Gives ``model`` the wrapped class matching its own, in place; returns it.

  Only functional and Sequential models holding tfmot wrappers change class;
  the change adds the two checks and nothing else (same state, same config).
  """
  if not has_tfmot_wrappers(model) or isinstance(model, _Guarded):
    return model
  if type(model) is keras.Sequential:  # pylint: disable=unidiomatic-typecheck
    model.__class__ = WrappedSequential
  elif type(model) is compat.functional_class():  # pylint: disable=unidiomatic-typecheck
    model.__class__ = WrappedFunctional
  return model
