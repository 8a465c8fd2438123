"""Weight sparsity per epoch in TensorBoard: global and per prunable weight.

At each epoch end, for the prunable weights ``W_k`` of the trained model,
``sparsity/global = sum_k #{W_k = 0} / sum_k #W_k`` and
``sparsity_by_layer/<key> = #{W_k = 0} / #W_k`` (``<key>`` a target key,
e.g. ``conv_1/kernel``) are written as scalars at step ``epoch`` (0-based,
as Keras' ``epoch_*`` scalars) to ``<workdir>/tensorboard/sparsity``. They
measure the weights themselves, so they show that the masks hold (tfmot's
``PruningSummaries`` reads the masks instead, and only on tf_keras).

Usage::

    writer = SparsitySummaries(wd / "tensorboard" / "sparsity", {k: var})
    keras.callbacks.LambdaCallback(on_epoch_end=writer)   # either Keras
"""

from typing import Mapping

from sbp_tf import pruning
from sbp_tf.compat import tf

__all__ = ["SparsitySummaries", "GLOBAL_TAG", "LAYER_TAG"]

GLOBAL_TAG = "sparsity/global"
LAYER_TAG = "sparsity_by_layer/"


class SparsitySummaries:
  """Callable ``(epoch, logs=None)`` writing the sparsity scalars.

  Args:
    log_dir: folder of the event file (created on first write).
    weights: target key -> variable (any Keras: read with ``np.asarray``).
  """

  def __init__(self, log_dir, weights: Mapping[str, object]):
    self.log_dir = str(log_dir)
    self.weights = dict(weights)
    self._writer = None

  def values(self) -> dict:
    """``{tag: sparsity}`` of the weights now."""
    out = {LAYER_TAG + k: pruning.zero_fraction([v])
           for k, v in self.weights.items()}
    out[GLOBAL_TAG] = pruning.zero_fraction(self.weights.values())
    return out

  def __call__(self, epoch, logs=None):
    del logs
    if self._writer is None:  # lazily: a resumed run appends to new files
      self._writer = tf.summary.create_file_writer(self.log_dir)
    with self._writer.as_default(step=int(epoch)):
      for tag, value in self.values().items():
        tf.summary.scalar(tag, value)
    self._writer.flush()
