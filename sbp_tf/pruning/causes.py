"""Why a layer can be fully pruned while the outputs stay connected.

A collapsed kernel on a side path of the network disconnects nothing, but
its path stops working. :func:`collapse_causes` names which side path it is,
so the collapse warning states the real cause:

* ``rnn_direction``: one half of a ``Bidirectional`` RNN (the other
  direction still carries the signal);
* ``attention``: the query or key projection of a ``MultiHeadAttention``
  (its attention weights become uniform; the values still pass);
* ``gate``: a layer that only feeds the gate input of a ``Multiply`` (a
  squeeze-excite gate: the gate becomes constant; the signal still passes);
* ``skip``: a branch that a skip connection bypasses (anything else, while
  the outputs stay connected).

Usage::

    collapse_causes(model, ["se_conv/kernel"], kit.tf_keras())
    # {'se_conv/kernel': 'gate'}
"""

from typing import Dict, Iterable, Set

from sbp_tf import compat

DESCRIPTIONS = {
    "rnn_direction": "one direction of a Bidirectional RNN (the other "
                     "direction still carries the signal)",
    "attention": "attention query/key projections (the attention weights "
                 "become uniform; the values still pass)",
    "gate": "gates of a Multiply, e.g. squeeze-excite (the gate becomes "
            "constant; the signal still passes)",
    "skip": "branches that a skip connection bypasses",
}


def _upstream(layer, seen: Set[int]) -> Set[int]:
  """``id`` of every layer feeding ``layer`` in the functional graph."""
  stack = [layer]
  while stack:
    for inputs in compat.node_input_layers(stack.pop()):
      for src in inputs:
        if id(src) not in seen:
          seen.add(id(src))
          stack.append(src)
  return seen


def gate_layers(model) -> Set[int]:
  """``id`` of the layers that feed a ``Multiply`` only through a gate
  input (every input but the signal, the one of the largest static size),
  not through its signal."""
  out = set()
  for layer in compat.flatten_layers(model, include_self=False):
    if type(layer).__name__ != "Multiply":
      continue
    for inputs in compat.node_input_layers(layer):
      if len(inputs) < 2:
        continue
      sizes = [_size(src) for src in inputs]
      s = sizes.index(max(sizes))
      signal = _upstream(inputs[s], {id(inputs[s])})
      for j, src in enumerate(inputs):
        if j != s:
          out |= _upstream(src, {id(src)}) - signal
  return out


def _size(layer) -> int:
  try:
    shape = layer.output.shape
    n = 1
    for d in shape[1:]:
      n *= int(d)
    return n
  except Exception:  # pylint: disable=broad-except  (no static shape)
    return -1


def _cause(target, gates: Set[int]) -> str:
  owner = target.owner
  kind = type(owner).__name__ if owner is not None else ""
  if kind == "Bidirectional":
    return "rnn_direction"
  if kind == "MultiHeadAttention" and target.local.split("/")[0] in (
      "query", "key"):
    return "attention"
  if id(owner) in gates or id(target.layer) in gates:
    return "gate"
  return "skip"


def collapse_causes(model, keys: Iterable[str], kit) -> Dict[str, str]:
  """``{key: cause}`` (module doc) for the collapsed ``keys`` of a model
  whose outputs stay connected."""
  keys = set(keys)
  try:
    gates = gate_layers(model)
  except Exception:  # pylint: disable=broad-except  (no functional graph)
    gates = set()
  return {t.key: _cause(t, gates) for t in kit.prunable_targets(model)
          if t.key in keys}
