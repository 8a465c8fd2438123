"""The TensorFlow and Keras 2 handles every module of sbp_tf uses.

Usage::

    from sbp_tf.compat import tf, keras   # keras is tf_keras (Keras 2)

Touching ``tf.keras`` before ``sbp_tf`` is imported, in a process where
``TF_USE_LEGACY_KERAS`` was not set, makes ``tf.keras`` Keras 3, which tfmot
cannot wrap; this module then raises with the fix instead of failing later.
"""

from sbp_tf import _env  # noqa: F401  (must precede the TensorFlow import)

import tensorflow as tf

keras = tf.keras

if not keras.__name__.startswith("tf_keras"):
  raise ImportError(
      "tf.keras resolved to %r, not tf_keras (Keras 2). tf.keras was "
      "used before sbp_tf was imported, without TF_USE_LEGACY_KERAS=1. Fix: set "
      "TF_USE_LEGACY_KERAS=1 in the environment, or import sbp_tf before "
      "touching tf.keras." % keras.__name__)

__all__ = ["tf", "keras"]
