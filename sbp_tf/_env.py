"""Selects Keras 2 (tf_keras) before TensorFlow is imported.

tensorflow-model-optimization 0.8.1 only understands Keras 2 models, and
TensorFlow >= 2.16 defaults ``tf.keras`` to Keras 3 unless the environment
variable ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow's first import.
Every entry point of this project imports this module first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO/WARNING chatter hides the output people care about.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
  raise ImportError(
      "sbp_tf needs Keras 2 (tf_keras) but TF_USE_LEGACY_KERAS="
      f"{os.environ['TF_USE_LEGACY_KERAS']!r} is set. Unset it or set it to 1 "
      "before importing TensorFlow.")
