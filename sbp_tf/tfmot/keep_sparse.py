"""Callbacks that ``fit`` needs for a tfmot-wrapped model with fixed masks.

``callbacks()`` returns ``[UpdatePruningStep(), KeepSparse()]``: tfmot's step
counter (its wrappers refuse to train without it) and our guard that pruned
weights are exactly zero after every optimizer step (tfmot alone re-masks
only in the next forward pass and at epoch end, so mid-epoch checkpoints
are not sparse: tfmot issue #206).

Usage::

    model.fit(ds, epochs=2, callbacks=sbp_tf.tfmot.callbacks() + [my_cb])
"""

from sbp_tf import masking
from sbp_tf.compat import keras

import tensorflow_model_optimization as tfmot_lib

__all__ = ["KeepSparse", "callbacks"]


class KeepSparse(keras.callbacks.Callback):
  """Keeps ``w = w * mask`` for every wrapped weight after every train step.

  On train begin it (re)installs the in-graph constraint ``w <- w * m`` that
  the optimizer applies after each update (a model loaded without
  ``sbp_tf.tfmot.load_model`` lacks it) and rebuilds the train function if
  it had to. With ``check=True`` it verifies at each epoch end that every
  pruned weight is exactly zero and raises otherwise.

  Args:
    check: verify exact zeros at epoch end (costs one pass over weights).
  """

  def __init__(self, check=False):
    super().__init__()
    self.check = check

  def on_train_begin(self, logs=None):
    if masking.keep_sparse(self.model):
      # A train function traced before the constraint existed lacks it.
      self.model.train_function = self.model.make_train_function(force=True)

  def on_epoch_end(self, epoch, logs=None):
    if not self.check:
      return
    for key, (w, m) in masking.wrapper_masks(self.model).items():
      leaked = int((w.numpy()[m.numpy() == 0] != 0).sum())
      if leaked:
        raise RuntimeError(
            f"{leaked} pruned weights of {key!r} are nonzero after epoch "
            f"{epoch}. Fix: report it; do not assign weights during fit.")


def callbacks(check=False) -> list:
  """Callbacks to pass to ``fit`` for a model from ``sbp_tf.tfmot.wrap``.

  Usage::

      model.fit(x, y, callbacks=sbp_tf.tfmot.callbacks())

  Returns:
    ``[tfmot UpdatePruningStep(), KeepSparse(check)]``.
  """
  return [tfmot_lib.sparsity.keras.UpdatePruningStep(), KeepSparse(check)]
