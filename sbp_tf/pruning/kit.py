"""What one Keras gives the pruning engine: the hooks that differ.

The engine (the steps score -> select -> apply, ``prune()`` composing them,
connectivity and dead branches, the collapse report, rescaling, masks'
validation and reports) is written once against a :class:`Kit`; each Keras
path supplies its own: :func:`tf_keras` here (tf_keras, Keras 2, the tfmot
path) and ``sbp_tf.keras3.kit.KERAS3``. What is the same on both is
everything else: inputs are TensorFlow tensors, gradients come from
``tf.GradientTape``, masks are numpy arrays keyed by the same target keys,
methods score from the same :class:`sbp_tf.pruning.ScoreContext` API.

Usage::

    from sbp_tf.pruning import diagnostics, kit
    diagnostics.connectivity(model, masks, kit=kit.tf_keras())
"""

import dataclasses
import functools
from typing import Callable, Dict


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
    linearized: ``(model, kernel_fn) -> context manager`` putting ``model``
      in its linearized state (kernels ``kernel_fn(key, W)``, biases 0,
      batch norm the identity, other weights ``|w|``, every layer in its
      linear form) and restoring it bit for bit on exit.
    snapshot: ``model -> [(variable, value)]`` of every variable scoring
      may touch (restored by :func:`sbp_tf.pruning.state.restore`).
    score_context: the :class:`ScoreContext` class whose gradients come
      from this Keras.
    adapt_method: ``Method -> Method`` (e.g. SynFlow's float64 clone for
      this Keras).
    describe_loss: ``(model, targets, fields) -> dict`` added to a data
      method's diagnostics (which loss each output got).
  """
  name: str
  prefix: str
  check_model: Callable
  prunable_targets: Callable
  unprunable_layers: Callable
  linearized: Callable
  snapshot: Callable
  score_context: type
  adapt_method: Callable = lambda m: m
  describe_loss: Callable = lambda model, targets, fields: {}


def _describe_tf_keras_loss(model, targets, fields) -> Dict:
  from sbp_tf.pruning import saliency  # pylint: disable=import-outside-toplevel
  plan = saliency.for_model(model, [t.variable for t in targets],
                            fields.get("loss"), fields.get("strategy"),
                            loss_weights=fields.get("loss_weights")).plan
  return dict(loss=plan.description, from_logits=plan.from_logits)


@functools.lru_cache(maxsize=None)
def tf_keras() -> Kit:
  """The tf_keras (Keras 2) kit, built on first use (its modules import the
  engine's)."""
  # pylint: disable=import-outside-toplevel
  from sbp_tf import compat
  from sbp_tf.pruning import scores, state, targets
  return Kit("tf_keras", "sbp_tf.pruning", compat.check_not_keras3, targets.prunable_targets,
             targets.unprunable_layers, state.linearized, state.snapshot,
             scores.ScoreContext, describe_loss=_describe_tf_keras_loss)


def resolve(kit) -> Kit:
  """``kit``, or the tf_keras kit for None."""
  return tf_keras() if kit is None else kit
