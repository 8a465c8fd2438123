"""The Keras 3 handle of :mod:`sbp_tf.keras3` and its backend checks.

``keras`` here is always the standalone Keras 3 package (``import keras``),
never ``tf.keras`` (which ``import sbp_tf`` turns into tf_keras, Keras 2).

Usage::

    from sbp_tf.keras3._runtime import keras, require_tensorflow
    require_tensorflow("saliency")   # raises on the JAX/torch backends
"""

import keras

if int(keras.__version__.split(".")[0]) < 3:
  raise ImportError(
      f"sbp_tf.keras3 needs Keras 3, but `import keras` gave Keras "
      f"{keras.__version__}. Fix: pip install 'keras>=3' (TensorFlow 2.21 "
      "ships it), or use sbp_tf's Keras 2 path (sbp_tf.pruning).")

PACKAGE = "sbp_tf_keras3"  # registered-name prefix: "sbp_tf_keras3>Name"


def backend() -> str:
  """The Keras 3 backend of this process ('tensorflow', 'jax', 'torch')."""
  return keras.backend.backend()


def require_tensorflow(what: str) -> None:
  """Raises NotImplementedError unless Keras 3 runs on TensorFlow.

  Gradient saliency, SynFlow's float64 clone and TFLite export are
  TensorFlow programs (``tf.GradientTape``, ``tf.lite``).
  """
  if backend() != "tensorflow":
    raise NotImplementedError(
        f"sbp_tf.keras3: {what} needs the TensorFlow backend of Keras 3, but "
        f"this process runs the {backend()!r} backend. Fix: set "
        "KERAS_BACKEND=tensorflow before `import keras`, or use a data-free "
        "method that needs no gradients ('magnitude', 'random') here.")


def check_model(model, where: str) -> None:
  """Raises TypeError unless ``model`` is a Keras 3 model, ValueError unless
  it and its layers are built.

  A tf_keras (Keras 2) model is named as such: it belongs to sbp_tf's
  Keras 2 path (``sbp_tf.pruning``), not this one.
  """
  if isinstance(model, keras.Model):
    if not model.built:
      raise ValueError(
          f"{where}: model {model.name!r} is not built, so its weights do "
          "not exist. Fix: call it on an input or build it with keras.Input.")
    unbuilt = [l.name for l in model.layers if not l.built]
    if unbuilt:  # Model.build of a subclassed model without its own build()
      raise ValueError(
          f"{where}: model {model.name!r} is marked built but its layers "
          f"{unbuilt} are not, so their weights do not exist (Keras 3's "
          "build(input_shape) of a subclassed model without a build() "
          "method of its own creates none). Fix: call the model once on a "
          "batch (model(x)) before pruning.")
    return
  mod = type(model).__module__ or ""
  if mod.startswith("tf_keras"):
    raise TypeError(
        f"{where}: got a tf_keras (Keras 2) model ({type(model).__name__}); "
        "sbp_tf.keras3 works on Keras 3 models. Fix: prune it with "
        "sbp_tf.pruning.prune, or build it with `import keras` (Keras 3).")
  raise TypeError(f"{where}: expected a keras.Model (Keras 3), got "
                  f"{type(model).__name__}. Fix: pass a built keras.Model.")
