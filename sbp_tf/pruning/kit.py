"""What one Keras gives the pruning engine: the hooks that differ.

The engine's checks (connectivity, dead branches, the collapse report) are
written once against a :class:`Kit`; each Keras path supplies its own:
:data:`TF_KERAS` here (tf_keras, Keras 2) and ``sbp_tf.keras3.kit.KERAS3``.
What stays the same on both is everything else: the inputs are TensorFlow
tensors, gradients come from ``tf.GradientTape``, masks are numpy arrays
keyed by the same target keys.

Usage::

    from sbp_tf.pruning import diagnostics, kit
    diagnostics.connectivity(model, masks, kit=kit.TF_KERAS)
"""

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Kit:
  """One Keras' hooks.

  Attributes:
    name: ``"tf_keras"`` or ``"keras3"``.
    prunable_targets: ``model -> [Target]`` (keys, layers, variables).
    linearized: ``(model, kernel_fn) -> context manager`` putting ``model``
      in its linearized state (kernels ``kernel_fn(key, W)``, biases 0,
      batch norm the identity, other weights ``|w|``, every layer in its
      linear form) and restoring it bit for bit on exit.
  """
  name: str
  prunable_targets: Callable
  linearized: Callable


def _tf_keras() -> Kit:
  from sbp_tf.pruning import state, targets  # pylint: disable=import-outside-toplevel
  return Kit("tf_keras", targets.prunable_targets, state.linearized)


TF_KERAS = _tf_keras()
