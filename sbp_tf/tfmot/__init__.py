"""tfmot integration: fixed pruning-at-init masks in tfmot's pruning wrappers.

Usage::

    pruned = sbp_tf.tfmot.wrap(model, masks)            # PruneLowMagnitude
    pruned.compile(optimizer, loss, metrics=["accuracy"])
    pruned.fit(ds, epochs=2, callbacks=sbp_tf.tfmot.callbacks())
    pruned.save("ckpt.keras"); pruned = sbp_tf.tfmot.load_model("ckpt.keras")
    final = sbp_tf.tfmot.strip(pruned)                  # plain Keras layers
"""

from sbp_tf.tfmot.guard import WrappedFunctional, WrappedSequential
from sbp_tf.tfmot.keep_sparse import KeepSparse, callbacks
from sbp_tf.tfmot.loading import custom_objects, load_model
from sbp_tf.tfmot.schedule import FixedMask
from sbp_tf.tfmot.wrapping import PruneLowMagnitude, masks_of, strip, unwrap, wrap

__all__ = ["wrap", "strip", "unwrap", "callbacks", "KeepSparse", "load_model",
           "custom_objects", "FixedMask", "PruneLowMagnitude", "masks_of",
           "WrappedFunctional", "WrappedSequential"]
