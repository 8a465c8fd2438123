"""sbp_tf: Robust Pruning at Initialization (Hayou et al., ICLR 2021) in Keras.

Importing this package selects Keras 2 (``tf_keras``) for ``tf.keras`` so that
models built here are accepted by tensorflow-model-optimization.
"""

from sbp_tf import _env  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)

__version__ = "0.1.0"

# Registers sbp_tf's initializers and layers with Keras' serialization
# registry, so that after ``import sbp_tf`` plain ``keras.models.load_model``
# loads saved zoo models (.keras and .h5) in a fresh process.
from sbp_tf import initializers as _initializers  # noqa: E402,F401
from sbp_tf import layers as _layers  # noqa: E402,F401
