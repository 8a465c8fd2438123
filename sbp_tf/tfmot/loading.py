"""Loading models that hold sbp_tf / tfmot mask wrappers.

Usage::

    model = sbp_tf.tfmot.load_model("ckpt.keras")   # .keras, .h5, SavedModel
    with keras.utils.custom_object_scope(sbp_tf.tfmot.custom_objects()):
      model = keras.models.load_model(path)          # equivalent, by hand
"""

import importlib

from sbp_tf import masking
from sbp_tf.compat import keras

from sbp_tf.tfmot.guard import WrappedFunctional, WrappedSequential, guard
from sbp_tf.tfmot.schedule import FixedMask
from sbp_tf.tfmot.wrapping import PruneLowMagnitude

__all__ = ["custom_objects", "load_model"]

# Modules that register serializable sbp_tf objects (initializers, layers)
# a saved model may reference; imported if present.
_REGISTERING_MODULES = ("sbp_tf.initializers", "sbp_tf.layers",
                        "sbp_tf.models")


def custom_objects() -> dict:
  """Custom objects of wrapped models: tfmot wrapper, schedule, the wrapped
  model classes, MaskedLayer, and the zoo's initializers and layers (by class
  name, as ``.h5`` has them).
  """
  from sbp_tf import models  # pylint: disable=g-import-not-at-top
  objs = {"PruneLowMagnitude": PruneLowMagnitude, "FixedMask": FixedMask,
          keras.utils.get_registered_name(FixedMask): FixedMask}
  for cls in (WrappedFunctional, WrappedSequential):
    objs[cls.__name__] = cls
  objs.update(masking.custom_objects())
  objs.update(models.custom_objects())
  return objs


def load_model(path, *, compile=True, **kwargs):  # pylint: disable=redefined-builtin
  """Loads a wrapped model (``.keras``, ``.h5`` or SavedModel directory).

  Masks, tfmot step and schedule come back from the file; the in-graph
  ``w <- w * mask`` constraint is reinstalled so training resumes with the
  same masks (pass ``sbp_tf.tfmot.callbacks()`` to ``fit``).

  Usage::

      model = sbp_tf.tfmot.load_model("run/ckpt.keras")
      model.fit(ds, initial_epoch=3, epochs=6, callbacks=sbp_tf.tfmot.callbacks())

  Args:
    path: file or SavedModel directory written by ``model.save``.
    compile: restore the compiled optimizer/loss (as keras' load_model).
    **kwargs: forwarded to ``keras.models.load_model``.
  """
  for name in _REGISTERING_MODULES:
    try:
      importlib.import_module(name)
    except ImportError:
      pass
  with keras.utils.custom_object_scope(custom_objects()):
    model = keras.models.load_model(path, compile=compile, **kwargs)
  masking.keep_sparse(model)
  return guard(model)  # files saved before the guard held a plain class
