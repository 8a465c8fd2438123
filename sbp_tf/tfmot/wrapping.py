"""Installs fixed pruning-at-init masks into tfmot ``PruneLowMagnitude`` wrappers.

``wrap(model, masks)`` clones ``model`` (recursing into nested Sequential and
functional sub-models) with each masked layer in tfmot's
``PruneLowMagnitude``, whose schedule is :class:`FixedMask` (never recomputes
the mask), writes our masks into the wrappers' ``mask`` variables and sets
``w <- w * m``. Layers tfmot cannot mask, or masks only as a whole
(depthwise and separable kernels, Embedding, LSTM/GRU/SimpleRNN cells,
Bidirectional, MultiHeadAttention, EinsumDense, registered custom layers),
get ``sbp_tf.masking.MaskedLayer`` instead. A subclassed model cannot be
cloned: keep its masks with ``sbp_tf.masking.constrain``. ``strip(model)`` undoes the wrapping.

Usage::

    pruned = sbp_tf.tfmot.wrap(model, result.masks)
    pruned.compile(...); pruned.fit(ds, callbacks=sbp_tf.tfmot.callbacks())
    final = sbp_tf.tfmot.strip(pruned)
"""

import numpy as np

from sbp_tf import masking
from sbp_tf import compat
from sbp_tf.compat import keras

# The wrapper class is not exported by tfmot's public API (only the factory).
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from sbp_tf.tfmot.guard import guard
from sbp_tf.tfmot.schedule import FixedMask

__all__ = ["wrap", "strip", "unwrap", "masks_of"]

PruneLowMagnitude = pruning_wrapper.PruneLowMagnitude


def wrap(model, masks, *, allow_missing=False) -> keras.Model:
  """Wraps ``model`` for tfmot with fixed masks: trained weights are ``w * m``.

  Pruned weights are zero on return; with :func:`sbp_tf.tfmot.callbacks` in
  ``fit`` they stay exactly zero after every optimizer step (a variable
  constraint ``w <- w * m`` runs inside the train step) and tfmot never
  recomputes a mask. The clone shares its layers (weights) with ``model``.
  Call inside ``strategy.scope()`` when training distributed.

  Usage::

      pruned = sbp_tf.tfmot.wrap(model, masks)
      pruned.compile(keras.optimizers.SGD(0.1), loss)
      pruned.fit(ds, epochs=2, callbacks=sbp_tf.tfmot.callbacks())

  Args:
    model: built Sequential or functional model (nested sub-models allowed).
    masks: Mapping target key -> 0/1 array (``sbp_tf.pruning.Masks``), keys
      from ``sbp_tf.pruning.prunable_targets``.
    allow_missing: leave targets without a mask dense instead of raising.

  Returns:
    The wrapped model (uncompiled): a ``WrappedFunctional`` or
    ``WrappedSequential`` (``sbp_tf.tfmot.guard``) when it holds tfmot
    wrappers, whose ``fit`` refuses to start without
    ``sbp_tf.tfmot.callbacks()`` and whose saved file, loaded with plain
    ``keras.models.load_model``, names ``sbp_tf.tfmot.load_model``.

  Raises:
    TypeError / ValueError: masks not a Mapping, masks for a different model
      (unknown/missing key, shape), non-0/1 values, nothing prunable,
      subclassed model.
  """
  compat.check_not_keras3(model, "sbp_tf.tfmot.wrap")
  checked = masking.check_masks(model, masks, allow_missing=allow_missing)
  masking.check_wrappable(model, "sbp_tf.tfmot.wrap")
  total = sum(m.size for _, m in checked)
  sparsity = 1.0 - sum(float(m.sum()) for _, m in checked) / max(total, 1)
  # tfmot's wrapper where it takes the layer whole (Dense, Conv: one
  # "kernel"); MaskedLayer for the rest (Embedding, RNN cells, attention).
  attrs_of = masking.owners(checked)

  def make_wrapper(layer):
    if attrs_of[id(layer)] == ["kernel"]:
      try:
        # The wrapper takes the layer's dtype policy, not the global one at
        # wrap time: it calls the layer's call() past the layer's own
        # autocast, so a mixed-precision layer wrapped after the global
        # policy went back to float32 met float32 inputs with its float16
        # compute (a MatMul dtype error in fit).
        return PruneLowMagnitude(layer, pruning_schedule=FixedMask(sparsity),
                                 dtype=layer.dtype_policy)
      except ValueError:  # a layer type tfmot's registry does not know
        pass
    return masking.MaskedLayer(layer, attrs=attrs_of[id(layer)])

  wrapped = masking.clone_wrapping(model, make_wrapper, set(attrs_of))
  masking.install_masks(wrapped, checked)
  # fit without our callbacks / plain load_model of its file: one-line errors.
  return guard(wrapped)


def masks_of(model) -> dict:
  """The masks held by a wrapped model: ``{target key: float32 0/1 array}``."""
  return {k: np.asarray(m.numpy(), np.float32)
          for k, (_, m) in masking.wrapper_masks(model).items()}


def strip(model) -> keras.Model:
  """tfmot's ``strip_pruning`` for our wrappers: plain layers, zeros kept.

  Re-applies ``w <- w * m`` then replaces every ``PruneLowMagnitude`` /
  ``MaskedLayer`` by its inner layer. The result loads with no custom
  objects (``keras.models.load_model``) and shares weights with ``model``.

  Usage::

      final = sbp_tf.tfmot.strip(pruned); final.save("final.keras")
  """
  return masking.strip(model)


unwrap = strip
