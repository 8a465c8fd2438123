"""Which weights of a Keras model can be pruned, and their stable keys.

Every mask in sbp_tf is keyed by a *target key*: the path of nested model
names down to the layer, then the weight attribute, joined by ``/``, e.g.
``"conv1/kernel"`` or ``"backbone/block2_conv/kernel"``. Wrapper layers
(tfmot's ``PruneLowMagnitude``, sbp_tf's ``MaskedLayer``) are transparent: the
key is that of the wrapped layer, so masks computed on a plain model apply
unchanged to its wrapped copy.

Prunable: Dense and Conv (1D/2D/3D, transposed) ``kernel``,
DepthwiseConv ``depthwise_kernel``, SeparableConv depthwise and pointwise
kernels. Never: biases, batch-norm parameters, embeddings.

Usage::

    for t in prunable_targets(model):
      print(t.key, t.variable.shape)
"""

import dataclasses
from typing import Iterator, List

from sbp_tf.compat import keras

_PRUNABLE_ATTRS = (
    # Order matters only for determinism of the listing.
    (keras.layers.SeparableConv1D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.SeparableConv2D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.DepthwiseConv2D, ("depthwise_kernel",)),
    (keras.layers.Conv1D, ("kernel",)),
    (keras.layers.Conv2D, ("kernel",)),
    (keras.layers.Conv3D, ("kernel",)),
    (keras.layers.Dense, ("kernel",)),
)


@dataclasses.dataclass(frozen=True)
class Target:
  """One prunable weight.

  Attributes:
    key: stable name of the weight, ``"<layer path>/<attr>"``.
    layer: the (unwrapped) Keras layer that owns the weight.
    attr: the attribute of ``layer`` holding the variable.
  """
  key: str
  layer: keras.layers.Layer
  attr: str

  @property
  def variable(self):
    return getattr(self.layer, self.attr)


def prunable_attrs(layer) -> tuple:
  """Names of the prunable weight attributes of ``layer`` (may be empty)."""
  for cls, attrs in _PRUNABLE_ATTRS:
    if isinstance(layer, cls):
      return attrs
  return ()


def _walk(layer, prefix) -> Iterator[Target]:
  if isinstance(layer, keras.layers.Wrapper):
    yield from _walk(layer.layer, prefix)
    return
  if isinstance(layer, keras.Model):
    for sub in layer.layers:
      yield from _walk(sub, prefix + layer.name + "/")
    return
  for attr in prunable_attrs(layer):
    if getattr(layer, attr, None) is not None:
      yield Target(prefix + layer.name + "/" + attr, layer, attr)


def prunable_targets(model) -> List[Target]:
  """Lists the prunable weights of a built model in layer order.

  Args:
    model: a built ``tf.keras.Model`` (Sequential, functional or subclassed,
      possibly nested or wrapped by tfmot).

  Returns:
    Targets in the model's layer order (inputs side first). The top-level
    model's own name is not part of the keys.

  Raises:
    ValueError: if the model is not built (its weights do not exist yet).
  """
  if not model.built:
    raise ValueError(
        f"Model {model.name!r} is not built, so its weights do not exist. "
        "Call it on an input or pass input_shape before pruning.")
  out = []
  seen = set()
  for sub in model.layers:
    for t in _walk(sub, ""):
      if id(t.variable) in seen:  # shared layers appear once
        continue
      seen.add(id(t.variable))
      out.append(t)
  return out
