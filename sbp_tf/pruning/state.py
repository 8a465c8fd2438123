"""Saving, restoring and temporarily neutralising a model's weights.

Pruning must leave a model exactly as it found it apart from the pruned
(and, on request, rescaled) kernels: :func:`snapshot`/:func:`restore` keep
bit-exact copies of every variable (BN moving statistics included).
:func:`linearized` is the state SynFlow and the connectivity check score in:
kernels replaced, every bias 0, batch norm the identity (gamma 1, beta 0,
moving mean 0, moving variance 1, used in inference mode), other weights
``|w|``, and every layer's ``activation`` attribute (Dense, Conv, Activation
layers) the identity, so the network computes ``prod |W|`` applied to its
input whatever its nonlinearity (a saturating tanh would otherwise shrink
the signal and SynFlow's gradients layer by layer).
"""

import contextlib
from typing import Callable, Dict, List, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import keras
from sbp_tf.pruning.targets import prunable_targets


def unique_weights(model) -> List:
  """The variables of ``model`` (trainable and not), each once, in order."""
  out, seen = [], set()
  for v in model.weights:
    if id(v) not in seen:
      seen.add(id(v))
      out.append(v)
  return out


def snapshot(model) -> List[Tuple[object, np.ndarray]]:
  """The values of all variables of ``model`` (trainable and not).

  ``v.numpy()`` is already a host array of its own: later writes to the
  variable (assign, assign_add, optimizer steps) do not reach it, nor do
  writes to it reach the variable (both tested), so no second copy is made
  (a second copy cost 0.2-0.5 s on ResNet-50-ImageNet).
  """
  return [(v, v.numpy()) for v in unique_weights(model)]


def restore(snap) -> None:
  """Writes back the values of a :func:`snapshot` (bit-exact)."""
  for v, value in snap:
    v.assign(value)


def _sublayers(model) -> List:
  """Every layer nested in ``model`` (not itself), each once."""
  return compat.flatten_layers(model, include_self=False)


def _batch_norm_roles(model) -> Dict[int, float]:
  roles = {}
  for m in _sublayers(model):
    if isinstance(m, keras.layers.BatchNormalization):
      for attr, val in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0),
                        ("moving_variance", 1.0)):
        v = getattr(m, attr, None)
        if v is not None:
          roles[id(v)] = val
  return roles


def _activation_layers(model) -> List:
  linear = keras.activations.linear
  return [m for m in _sublayers(model)
          if isinstance(m, keras.layers.Layer)
          and callable(getattr(m, "activation", None))
          and m.activation is not linear]


def linearize_activations(model) -> List[Tuple[object, Callable]]:
  """Sets every layer's ``activation`` attribute to the identity.

  Returns:
    ``(layer, activation)`` pairs to put back (functions traced while the
    identity is set keep it).
  """
  swapped = []
  for layer in _activation_layers(model):
    swapped.append((layer, layer.activation))
    layer.activation = keras.activations.linear
  return swapped


def linear_values(model, kernel_fn: Callable[[str, np.ndarray], np.ndarray],
                  snap=None) -> List[Tuple[object, np.ndarray]]:
  """``(variable, value)`` for every variable :func:`linearized` sets.

  Kernels ``kernel_fn(key, W)`` (as it returns them, any float dtype);
  biases 0, batch norm the identity and other floating weights ``|w|``, in
  the variable's dtype; integer variables are left out. Reads ``model`` (or
  ``snap``, its :func:`snapshot`) and changes nothing.
  """
  targets = {id(t.variable): t.key for t in prunable_targets(model)}
  bn = _batch_norm_roles(model)
  out = []
  for v, value in (snapshot(model) if snap is None else snap):
    if id(v) in targets:
      new = kernel_fn(targets[id(v)], value)
    elif id(v) in bn:
      new = np.full_like(value, bn[id(v)])
    elif v.name.split("/")[-1].startswith("bias"):
      new = np.zeros_like(value)
    elif v.dtype.is_floating:
      new = np.abs(value)
    else:
      continue  # integer step counters etc.
    out.append((v, new))
  return out


@contextlib.contextmanager
def linearized(model, kernel_fn: Callable[[str, np.ndarray], np.ndarray],
               linear_activations: bool = True):
  """Context: kernels ``kernel_fn(key, W)``, biases 0, BN identity, rest |w|.

  With ``linear_activations`` every layer's ``activation`` is the identity
  inside the context (functions traced inside see it; functions traced
  before do not). Everything is restored bit-exactly on exit, also on error.
  """
  snap = snapshot(model)
  swapped = []
  try:
    if linear_activations:
      swapped = linearize_activations(model)
    for v, new in linear_values(model, kernel_fn, snap):
      v.assign(np.asarray(new, dtype=v.dtype.as_numpy_dtype))
    yield
  finally:
    for layer, act in swapped:
      layer.activation = act
    restore(snap)
