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



def check_not_keras3(model, where: str) -> None:
  """Raises a one-line TypeError if ``model`` is a Keras 3 object.

  A model built after ``import keras`` (Keras 3) is not a tf_keras model;
  tfmot and sbp_tf cannot read it, and would otherwise answer with a
  misleading message or silently find nothing to prune.
  """
  mod = type(model).__module__ or ""
  if not isinstance(model, keras.Model) and (
      mod == "keras" or mod.startswith("keras.")):
    raise TypeError(
        f"{where}: got a Keras 3 model ({type(model).__name__} from "
        f"{mod}), but sbp_tf and tfmot need a Keras 2 (tf_keras) model. "
        "Fix: build it with tf.keras after `import sbp_tf` (or "
        "`import tf_keras as keras`), not with `import keras`.")


__all__ = ["tf", "keras", "check_not_keras3", "register_serializable"]


def register_serializable(cls):
  """Registers ``cls`` as ``sbp_tf>Name`` and under its plain class name.

  The plain name is what ``.h5`` configs hold and what tf_keras looks up
  when it rebuilds a layer's initializer from a ``.keras`` file, so both
  formats load with plain ``keras.models.load_model``.
  """
  cls = keras.utils.register_keras_serializable(package="sbp_tf")(cls)
  keras.utils.get_custom_objects().setdefault(cls.__name__, cls)
  return cls
