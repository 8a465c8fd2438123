"""Which weights of a Keras 3 model can be pruned, and their stable keys.

Keys are those of :mod:`sbp_tf.pruning.targets` (the tf_keras path): the
path of nested model names down to the layer, then the weight, joined by
``/`` (``"conv1/kernel"``, ``"backbone/block2_conv/kernel"``), so a masks
file is valid on both paths for the same architecture. Keras 3 keeps a
DepthwiseConv kernel in ``layer.kernel``; its key still ends in
``depthwise_kernel`` as in Keras 2.

Prunable: Dense, Conv (1D/2D/3D and transposed) ``kernel``, DepthwiseConv
``depthwise_kernel``, SeparableConv depthwise and pointwise kernels. Never:
biases, batch-norm parameters, embeddings.

Usage::

    from sbp_tf.keras3 import targets
    for t in targets.prunable_targets(model):
      print(t.key, t.variable.shape, t.constraint_attr)
"""

import dataclasses
from typing import Iterator, List, Tuple

from sbp_tf.keras3._runtime import check_model, keras

_L = keras.layers
# (layer class, ((key suffix, weight attribute, constraint attribute), ...)).
_PRUNABLE = (
    ((_L.SeparableConv1D, _L.SeparableConv2D),
     (("depthwise_kernel", "depthwise_kernel", "depthwise_constraint"),
      ("pointwise_kernel", "pointwise_kernel", "pointwise_constraint"))),
    ((_L.DepthwiseConv1D, _L.DepthwiseConv2D),
     (("depthwise_kernel", "kernel", "depthwise_constraint"),)),
    ((_L.Conv1D, _L.Conv2D, _L.Conv3D, _L.Conv1DTranspose, _L.Conv2DTranspose,
      _L.Conv3DTranspose, _L.Dense),
     (("kernel", "kernel", "kernel_constraint"),)),
)


@dataclasses.dataclass(frozen=True)
class Target:
  """One prunable weight.

  Attributes:
    key: ``"<layer path>/<name>"`` (as on the tf_keras path).
    layer: the Keras 3 layer owning the weight.
    attr: the layer attribute holding the variable.
    constraint_attr: the layer attribute (and config field) of its
      constraint, e.g. ``kernel_constraint``.
  """
  key: str
  layer: object
  attr: str
  constraint_attr: str

  @property
  def variable(self):
    return getattr(self.layer, self.attr)


def prunable_attrs(layer) -> Tuple[Tuple[str, str, str], ...]:
  """``(key suffix, attribute, constraint attribute)`` of each prunable
  weight of ``layer`` (empty for other layers)."""
  for classes, attrs in _PRUNABLE:
    if isinstance(layer, classes):
      return attrs
  return ()


def _walk(layer, prefix) -> Iterator[Target]:
  if isinstance(layer, _L.Wrapper):
    yield from _walk(layer.layer, prefix)
    return
  if isinstance(layer, keras.Model):
    for sub in layer.layers:
      yield from _walk(sub, prefix + layer.name + "/")
    return
  for suffix, attr, constraint_attr in prunable_attrs(layer):
    v = getattr(layer, attr, None)
    if v is None:
      continue
    if not isinstance(v, keras.Variable):
      raise TypeError(
          f"{layer.name}.{attr} is a {type(v).__name__}, not a variable (a "
          "quantized or LoRA layer computes it). Fix: prune the float model "
          "before quantizing or enabling LoRA.")
    yield Target(prefix + layer.name + "/" + suffix, layer, attr,
                 constraint_attr)


def prunable_targets(model) -> List[Target]:
  """The prunable weights of a built Keras 3 model, in layer order.

  The top-level model's own name is not part of the keys; shared layers
  appear once.

  Raises:
    TypeError: ``model`` is not a Keras 3 model (e.g. tf_keras).
    ValueError: ``model`` is not built.
  """
  check_model(model, "prunable_targets")
  out, seen = [], set()
  for sub in model.layers:
    for t in _walk(sub, ""):
      if id(t.variable) not in seen:
        seen.add(id(t.variable))
        out.append(t)
  return out


__all__ = ["Target", "prunable_attrs", "prunable_targets"]
