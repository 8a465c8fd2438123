"""A tfmot pruning schedule that never fires: masks stay the ones installed.

tfmot's ``PruneLowMagnitude`` asks its schedule at every training step
whether to recompute the mask by weight magnitude. Pruning at initialization
fixes the mask before training, so this schedule always answers no:
``should_prune(step) = False`` for every step, and reports the sparsity of
the installed masks (used by tfmot's summaries only).

Usage::

    schedule = FixedMask(sparsity=0.9)
    schedule(step)  # -> (False, 0.9)
"""

from sbp_tf.compat import keras, tf

import tensorflow_model_optimization as tfmot_lib

__all__ = ["FixedMask"]


@keras.utils.register_keras_serializable(package="sbp_tf")
class FixedMask(tfmot_lib.sparsity.keras.PruningSchedule):
  """Pruning schedule whose ``__call__(step)`` is ``(False, sparsity)``.

  Args:
    sparsity: fraction of pruned weights of the installed masks, in [0, 1];
      informational (tfmot summaries), it never changes a mask.
  """

  def __init__(self, sparsity=0.0):
    sparsity = float(sparsity)
    if not 0.0 <= sparsity <= 1.0:
      raise ValueError(
          f"FixedMask sparsity must be in [0, 1], got {sparsity}. Fix: pass "
          "the pruned fraction, e.g. masks.sparsity().")
    self.sparsity = sparsity

  def __call__(self, step):
    del step  # the mask is fixed at every step
    return tf.constant(False), tf.constant(self.sparsity, tf.float32)

  def get_config(self):
    # tfmot's wrapper stores {'class_name', 'config'} and deserializes it by
    # class name, so the registered name must be the class_name.
    return {"class_name": keras.utils.get_registered_name(type(self)),
            "config": {"sparsity": self.sparsity}}

  @classmethod
  def from_config(cls, config):
    config = dict(config.get("config", config))
    return cls(**config)
