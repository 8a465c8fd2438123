"""What one Keras gives the pruning engine: the hooks that differ.

The engine (the steps score -> select -> apply, ``prune()`` composing them,
connectivity and dead branches, the collapse report, rescaling, masks'
validation and reports) is written once against a :class:`Kit`; each Keras
path supplies its own: :func:`tf_keras` here (tf_keras, Keras 2, the tfmot
path) and ``sbp_tf.keras3.kit.KERAS3``. Everything else reads the model's
own Keras (:func:`sbp_tf.compat.keras_of`) and is the same code on both:
the linearized state and SynFlow's float64 clone, the saliency and its
losses, the target registry.

Usage::

    from sbp_tf.pruning import diagnostics, kit
    diagnostics.connectivity(model, masks, kit=kit.tf_keras())
"""

import dataclasses
import functools
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Kit:
  """One Keras' hooks.

  Attributes:
    name: ``"tf_keras"`` or ``"keras3"``.
    prefix: the public module that messages name (``"sbp_tf.pruning"``,
      ``"keras3"``).
    check_model: ``(model, where) -> None``; raises (naming the right path)
      on a model of the other Keras.
    prunable_targets: ``model -> [Target]`` (keys, layers, variables).
    unprunable_layers: ``model -> [{layer, type, weights}]``.
    score_context: the :class:`ScoreContext` class whose gradients come
      from this Keras.
  """
  name: str
  prefix: str
  check_model: Callable
  prunable_targets: Callable
  unprunable_layers: Callable
  score_context: type


@functools.lru_cache(maxsize=None)
def tf_keras() -> Kit:
  """The tf_keras (Keras 2) kit, built on first use (its modules import the
  engine's)."""
  # pylint: disable=import-outside-toplevel
  from sbp_tf import compat
  from sbp_tf.pruning import scores, targets
  return Kit("tf_keras", "sbp_tf.pruning", compat.check_not_keras3,
             targets.prunable_targets, targets.unprunable_layers,
             scores.ScoreContext)


def resolve(kit) -> Kit:
  """``kit``, or the tf_keras kit for None."""
  return tf_keras() if kit is None else kit
