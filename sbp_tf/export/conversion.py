"""Model -> ``.tflite`` bytes: strip mask wrappers, float32, convert.

tf_keras models convert with ``from_keras_model``; Keras 3 models (and
recurrent models, at batch size 1) as a traced function of their named
inputs. ``EXPERIMENTAL_SPARSITY`` stores pruned weights sparse.
"""

import warnings
from typing import Optional

from sbp_tf import _env, compat, masking
from sbp_tf.compat import keras, tf
from sbp_tf.export import inputs
from sbp_tf.export import running
from sbp_tf.pruning import precision


_QUANTIZE = (None, "dynamic", "int8")


def _is_wrapped(model) -> bool:
  if compat.keras_family(model) == "keras3":  # masks are constraints there
    return False
  for layer in masking.walk_layers(model):
    if isinstance(layer, masking.MaskedLayer) or (
        isinstance(layer, keras.layers.Wrapper) and
        hasattr(layer, "pruning_vars")):
      return True
  return False


def plain_model(model, caller: str):
  """``model`` without mask wrappers (tfmot or MaskedLayer), zeros applied,
  in float32 (a mixed-precision model's float32 copy, see
  :func:`sbp_tf.pruning.precision.in_float32`)."""
  K = compat.keras_of(model)
  if not isinstance(model, K.Model):
    raise TypeError(f"{caller} needs a keras.Model, got {type(model)}. Fix: "
                    "pass the Keras model (wrapped or stripped).")
  return precision.in_float32(
      masking.strip(model) if _is_wrapped(model) else model, K, caller)


def check_quantize(quantize, representative_data) -> None:
  if quantize not in _QUANTIZE:
    raise ValueError(
        f"quantize={quantize!r} is not supported. Fix: use one of "
        f"{_QUANTIZE}.")
  if quantize == "int8" and representative_data is None:
    raise ValueError(
        "quantize='int8' calibrates activations on real inputs. Fix: pass "
        "representative_data=<a few hundred training inputs>.")


def convert(model, *, sparse=True, quantize: Optional[str] = None,
            representative_data=None) -> bytes:
  """Converts ``model`` to TFLite flatbuffer bytes; writes nothing.

  Mask wrappers (tfmot, :class:`sbp_tf.masking.MaskedLayer`) are stripped
  first. ``sparse`` adds ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (pruned
  weights stored in a compressed sparse format); ``quantize='dynamic'`` stores
  int8 weights, ``'int8'`` also int8 activations, calibrated on up to 100
  examples of ``representative_data`` (required then; checked otherwise).

  Usage::

      content = convert(model, quantize="int8", representative_data=x[:256])
      sbp_tf.files.write_bytes("m.tflite", content)

  Raises:
    ValueError: unknown ``quantize``; ``'int8'`` without data; bad data shape.
    TypeError: ``model`` is not a ``keras.Model``.
  """
  check_quantize(quantize, representative_data)
  plain = plain_model(model, "convert")
  calib = None
  if representative_data is not None:  # validates the shape in every mode
    calib, _ = inputs.as_inputs(representative_data, plain, 0)
  keras3 = compat.keras_family(plain) == "keras3"
  try:
    return _convert_with(
        _traced_converter(plain, None) if keras3 else
        tf.lite.TFLiteConverter.from_keras_model(plain),
        plain, sparse, quantize, calib)
  except Exception as e:  # pylint: disable=broad-except
    if "TensorList" not in str(e):
      raise
  # Recurrent layers (LSTM/GRU/SimpleRNN) loop over a TensorList whose
  # element shape holds the batch size: TFLite needs it static, so the
  # file takes one example per call (as verification.verify and timing.time_interpreter feed).
  return _convert_with(_traced_converter(plain, 1), plain, sparse, quantize,
                       calib)


def _traced_converter(plain, batch):
  """A converter of ``plain`` traced as a function of its inputs (batch
  size ``batch``, None: free), with the model's input and output names as
  the signature's. Keras 3 models convert this way (the converter freezes
  the variables of the trackable it is given, and a Keras 3 model does not
  expose its ``tf.Variable``s to it: a holder module does)."""
  specs = inputs.input_specs(plain)
  outs = running.output_names(plain, len(tf.nest.flatten(plain.outputs))
                       if getattr(plain, "outputs", None) else 1)

  def serve(**xs):
    ys = tf.nest.flatten(plain(inputs.pack(plain, [xs[n] for n, _, _ in specs]),
                               training=False))
    return dict(zip(outs, ys))

  concrete = tf.function(serve, autograph=False).get_concrete_function(**{
      n: tf.TensorSpec((batch,) + shape, tf.as_dtype(dtype), name=n)
      for n, shape, dtype in specs})
  holder = plain
  if compat.keras_family(plain) == "keras3":
    holder = tf.Module()
    holder.variables_ = [v.value for v in plain.variables]
  return tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)


def _convert_with(converter, plain, sparse, quantize, calib) -> bytes:
  """``converter`` set for ``sparse``/``quantize`` (int8: calibrated on
  ``calib``), run."""
  converter.optimizations = (
      [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []) + (
          [tf.lite.Optimize.DEFAULT] if quantize is not None else [])
  if quantize == "int8":
    names = [spec[0] for spec in inputs.input_specs(plain)]

    def representative():
      for i in range(min(len(calib[0]), 100)):
        if len(calib) == 1:
          yield [calib[0][i:i + 1]]
        else:  # by the signature's input names (= Input layer names)
          yield {n: a[i:i + 1] for n, a in zip(names, calib)}
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  with warnings.catch_warnings(), _env.quiet_stderr():
    # Float I/O around int8 kernels is intended; TF warns it lacks stats.
    # The converter's C++ log lines ignore TF_CPP_MIN_LOG_LEVEL.
    warnings.filterwarnings("ignore", message="Statistics for quantized")
    return converter.convert()
