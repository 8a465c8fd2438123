"""Saving, restoring and linearizing the variables of a Keras 3 model.

The Keras 3 counterpart of :mod:`sbp_tf.pruning.state`: scoring leaves a
model bit for bit as it found it (:func:`snapshot` / :func:`restore` cover
every variable: batch-norm statistics, dropout seed states), and
:func:`linear_values` gives the values of SynFlow's linearized network
(kernels replaced, every bias 0, batch norm the identity: gamma 1, beta 0,
moving mean 0, moving variance 1; other float weights ``|w|``), which
:func:`linearized` sets for the length of a ``with`` block.

Usage::

    snap = snapshot(model)
    ...                          # anything that writes variables
    restore(snap)                # bit-exact
"""

import contextlib
from typing import Callable, List, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.keras3._runtime import keras
from sbp_tf.keras3.layers import StableScale
from sbp_tf.keras3.targets import prunable_targets
from sbp_tf.pruning import state as _k2_state

_BN_IDENTITY = (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0),
                ("moving_variance", 1.0))


def unique_variables(model) -> List:
  """Every variable of ``model`` (weights, statistics, seed states), once."""
  return _k2_state.unique(model.variables)


def snapshot(model) -> List[Tuple[object, np.ndarray]]:
  """``(variable, value)`` for every variable of ``model`` (host copies)."""
  return _k2_state.snapshot_of(unique_variables(model))


restore = _k2_state.restore  # the same write-back on both paths


def is_floating(variable) -> bool:
  return "float" in keras.backend.standardize_dtype(variable.dtype)


def sublayers(model):
  """Every layer nested in ``model``, each once (Keras' own walk: nested
  models, wrappers, Bidirectional halves, RNN cells, attention
  projections)."""
  return compat.flatten_layers(model, include_self=False)


def _roles(model):
  """``id(variable) -> value`` for batch-norm variables and biases."""
  roles = {}
  for layer in sublayers(model):
    if isinstance(layer, keras.layers.BatchNormalization):
      for attr, val in _BN_IDENTITY:
        v = getattr(layer, attr, None)
        if v is not None:
          roles[id(v)] = val
    for attr in ("bias", "depthwise_bias"):
      v = getattr(layer, attr, None)
      if isinstance(v, keras.Variable):
        roles[id(v)] = 0.0
  return roles


def linear_values(model, kernel_fn: Callable[[str, np.ndarray], np.ndarray]
                  ) -> List[Tuple[object, np.ndarray]]:
  """``(variable, value)`` of SynFlow's linearized state of ``model``.

  Kernels ``kernel_fn(key, W)``; biases 0; batch norm the identity; other
  floating variables ``|w|``; integer variables (seed states, counters) are
  left out. Reads ``model`` and changes nothing.
  """
  kernels = {id(t.variable): t.key for t in prunable_targets(model)}
  roles = _roles(model)
  out = []
  for v in unique_variables(model):
    if not is_floating(v):
      continue
    value = v.numpy()
    if id(v) in kernels:
      new = kernel_fn(kernels[id(v)], value)
    elif id(v) in roles:
      new = np.full_like(value, roles[id(v)])
    else:
      new = np.abs(value)
    out.append((v, new))
  return out


# The tf_keras path's table resolved in Keras 3, so both paths score the same
# network (Keras 3's StableScale is linear as it is: no warning).
_LINEAR_CALLS, _LINEAR_AS_IS = _k2_state.linear_tables(keras.layers,
                                                       StableScale)
_MISSING = object()


_bind = _k2_state._bind  # pylint: disable=protected-access


def linearize_layers(model) -> List[Tuple[object, object]]:
  """Sets the linear ``call`` of every layer of ``model`` with one (see the
  module docstring): the layers :func:`sublayers` finds (nested models and
  wrappers' layers included).

  A class registered with :func:`sbp_tf.pruning.register_linearization`
  takes the user's form. A layer of no known form (a Lambda, a custom
  layer, a recurrent layer) runs as it is and one warning names them.

  Returns:
    Undo records for :func:`unlinearize_layers`.
  """
  undo, unknown = [], []
  for layer in sublayers(model):
    known, call = _k2_state.linear_call_of(layer, keras.layers, _LINEAR_CALLS,
                                           _LINEAR_AS_IS)
    if call is not None:
      # An instance attribute: Layer.__call__ looks ``self.call`` up, so
      # the class and other instances are untouched.
      undo.append((layer, layer.__dict__.get("call", _MISSING)))
      object.__setattr__(layer, "call", _bind(call, layer))
    elif not (known or isinstance(layer, keras.Model)
              or callable(getattr(layer, "activation", None))):
      unknown.append(f"{layer.name!r} ({type(layer).__name__})")
  _k2_state.warn_not_linearized(unknown)
  return undo


def unlinearize_layers(undo) -> None:
  """Undoes :func:`linearize_layers` (records in reverse order)."""
  for layer, old in reversed(undo):
    if old is _MISSING:
      layer.__dict__.pop("call", None)
    else:
      object.__setattr__(layer, "call", old)


@contextlib.contextmanager
def linearized(model, kernel_fn: Callable[[str, np.ndarray], np.ndarray],
               layers: bool = False):
  """Context: the :func:`linear_values` state, every layer's ``activation``
  attribute the identity (eager calls see it) and, with ``layers``, the
  :func:`linearize_layers` form (TensorFlow backend only); restored
  bit-exactly on exit, also on error."""
  snap = snapshot(model)
  # LSTM/GRU expose ``activation`` as a read-only property of their cell.
  swapped = [(l, l.activation) for l in sublayers(model)
             if callable(getattr(l, "activation", None)) and not isinstance(
                 getattr(type(l), "activation", None), property)]
  calls = []
  try:
    for layer, _ in swapped:
      layer.activation = keras.activations.linear
    if layers:
      calls = linearize_layers(model)
    for v, new in linear_values(model, kernel_fn):
      v.assign(np.asarray(new, v.dtype))
    yield
  finally:
    unlinearize_layers(calls)
    for layer, act in swapped:
      layer.activation = act
    restore(snap)


__all__ = ["is_floating", "linear_values", "linearize_layers", "linearized",
           "restore", "snapshot", "sublayers", "unique_variables",
           "unlinearize_layers"]
