"""Keras callbacks of the training loop: step learning rate, epoch checkpoints.

Usage::

    cbs = [StepDecay(0.1, epochs=160), EpochCheckpoint(workdir, manager)]
    model.fit(ds, epochs=160, callbacks=cbs)
"""

import functools
import time
from typing import Sequence

from sbp_tf import pruning
from sbp_tf.compat import keras
from sbp_tf.training import workdir as wd_lib


def step_lr(epoch: int, lr: float, epochs: int,
            decay_at: Sequence[float] = (0.5, 0.75), factor: float = 0.1
            ) -> float:
  """Learning rate of a 0-based ``epoch``: ``lr * factor**k``.

  ``k`` = number of boundaries ``round(f * epochs)`` (f in ``decay_at``) that
  ``epoch`` has reached; the paper's schedule is 0.1 -> 0.01 at 50% -> 0.001
  at 75% of training.

  Example::

      [step_lr(e, 0.1, 4) for e in range(4)]  # [0.1, 0.1, 0.01, 0.001]
  """
  k = sum(epoch >= round(f * epochs) for f in decay_at)
  return lr * factor ** k


class StepDecayLogic:
  """Sets the optimizer learning rate to :func:`step_lr` at each epoch start
  and logs it as ``lr`` (the body of :class:`StepDecay`, any Keras)."""

  def __init__(self, lr, epochs, decay_at=(0.5, 0.75), factor=0.1):
    super().__init__()
    self.lr, self.epochs = lr, epochs
    self.decay_at, self.factor = tuple(decay_at), factor

  def on_epoch_begin(self, epoch, logs=None):
    # Both Kerases hold a constant learning rate as a variable.
    self.model.optimizer.learning_rate.assign(
        step_lr(epoch, self.lr, self.epochs, self.decay_at, self.factor))

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["lr"] = float(self.model.optimizer.learning_rate.numpy())


class EpochCheckpointLogic:
  """After each epoch: checkpoint, then metrics row, then state (in that order).

  The state file is written last, so ``state.epochs_done == N`` guarantees
  that checkpoint ``ckpt-N`` and N metric rows exist; a kill at any point
  resumes from a consistent epoch. (The body of :class:`EpochCheckpoint`,
  any Keras.)

  Args:
    workdir: a ``sbp_tf.training.workdir.Workdir``.
    manager: ``tf.train.CheckpointManager`` over model + optimizer.
    epochs: total epochs (stored in the state file).
    targets: optional prunable weight variables; their zero fraction is
      logged as ``weight_sparsity`` to show masks hold during training.
  """

  def __init__(self, workdir, manager, epochs, targets=()):
    super().__init__()
    self.workdir, self.manager, self.epochs = workdir, manager, epochs
    self.targets = list(targets)
    self._t0 = None

  def on_epoch_begin(self, epoch, logs=None):
    self._t0 = time.time()

  def on_epoch_end(self, epoch, logs=None):
    done = epoch + 1
    self.manager.save(checkpoint_number=done)
    row = {"epoch": done}
    row.update({k: float(v) for k, v in (logs or {}).items()})
    if self.targets:
      row["weight_sparsity"] = pruning.zero_fraction(self.targets)
    row["epoch_time_s"] = time.time() - (self._t0 or time.time())
    rows = [r for r in self.workdir.metrics() if r["epoch"] < done] + [row]
    self.workdir.write_metrics(rows)
    self.workdir.set_state(wd_lib.TRAINING, done, epochs=self.epochs)


class StepDecay(StepDecayLogic, keras.callbacks.Callback):
  """:class:`StepDecayLogic` as a tf_keras callback."""


class EpochCheckpoint(EpochCheckpointLogic, keras.callbacks.Callback):
  """:class:`EpochCheckpointLogic` as a tf_keras callback."""


@functools.lru_cache(maxsize=None)
def for_keras(keras_module):
  """``(StepDecay, EpochCheckpoint)`` for ``keras_module`` (tf_keras: the
  classes above; Keras 3: the same bodies on ``keras.callbacks.Callback``)."""
  if keras_module is keras:
    return StepDecay, EpochCheckpoint
  base = keras_module.callbacks.Callback
  return (type("StepDecay", (StepDecayLogic, base), {}),
          type("EpochCheckpoint", (EpochCheckpointLogic, base), {}))
