"""sbp_tf: Robust Pruning at Initialization (Hayou et al., ICLR 2021) in Keras.

Importing this package selects Keras 2 (``tf_keras``) for ``tf.keras`` so that
models built here are accepted by tensorflow-model-optimization.
"""

from sbp_tf import _env  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)

__version__ = "0.1.0"
