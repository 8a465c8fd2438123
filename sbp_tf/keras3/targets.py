"""Which weights of a Keras 3 model can be pruned, and their stable keys.

The walk and the registry are those of :mod:`sbp_tf.pruning.targets` (one
implementation for both Keras paths), read with Keras 3's classes: the same
layers are prunable on both paths, under the same keys (``"conv1/kernel"``,
``"backbone/block2_conv/kernel"``, ``"mha/query/kernel"``,
``"lstm/lstm_cell/recurrent_kernel"``, ``"emb/embeddings"``), so a masks
file is valid on both paths for the same architecture. Keras 3 keeps a
DepthwiseConv kernel in ``layer.kernel``; its key still ends in
``depthwise_kernel`` as in Keras 2. Layers holding trainable weights that no
registry entry covers are listed by :func:`unprunable_layers` (and in the
report), never skipped silently; :func:`sbp_tf.pruning.register_target`
accepts Keras 3 classes.

Usage::

    from sbp_tf.keras3 import targets
    for t in targets.prunable_targets(model):
      print(t.key, t.variable.shape, t.constraint_attr)
"""

from typing import Dict, List

from sbp_tf.keras3._runtime import check_model, keras
from sbp_tf.pruning import targets as _targets

KERAS3 = _targets.Table(keras, _targets.builtin(depthwise_kernel_in="kernel"))
_targets.register_table("keras3", KERAS3)  # read by the shared walk
Target = _targets.Target


def _check_variables(targets) -> None:
  for t in targets:
    v = t.variable
    if not isinstance(v, keras.Variable):
      raise TypeError(
          f"{t.layer.name}.{t.attr} is a {type(v).__name__}, not a variable "
          "(a quantized or LoRA layer computes it). Fix: prune the float "
          "model before quantizing or enabling LoRA.")


def prunable_targets(model) -> List[Target]:
  """The prunable weights of a built Keras 3 model, in layer order.

  The top-level model's own name is not part of the keys; shared layers
  appear once.

  Raises:
    TypeError: ``model`` is not a Keras 3 model (e.g. tf_keras), or a
      prunable weight is computed (quantized, LoRA) rather than stored.
    ValueError: ``model`` is not built.
  """
  check_model(model, "prunable_targets")
  out = _targets.prunable_targets(model, KERAS3)
  _check_variables(out)
  return out


def unprunable_layers(model) -> List[Dict]:
  """Layers whose own trainable weights no registry entry covers (not
  pruned): ``[{layer, type, weights}]``, as on the tf_keras path."""
  check_model(model, "unprunable_layers")
  return _targets.unprunable_layers(model, KERAS3)


__all__ = ["KERAS3", "Target", "prunable_targets", "unprunable_layers"]
