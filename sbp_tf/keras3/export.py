"""Export a pruned Keras 3 model to a sparse TFLite file, verified.

One implementation for both paths: the steps of :mod:`sbp_tf.export`
(``convert``, ``verify``, ``size_report``, ``time_interpreter`` and their
compositions ``export_for_run`` and ``to_tflite``), which read the model's
own Keras. A Keras 3 model is traced as a function of its inputs (named as
its Input layers, outputs as its output layers) and converted with
``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``; several inputs and outputs,
token-id inputs, recurrent layers, ``quantize='dynamic'`` / ``'int8'`` and
mixed-precision models (converted as their float32 copy) are handled as on
tf_keras, and the report has the same keys. Here is only what Keras 3
adds: the TensorFlow backend is required, and the model is checked to be a
Keras 3 one (masks are constraints, nothing to strip).

Usage::

    from sbp_tf.keras3 import export
    r = export.to_tflite(model, "model.tflite", representative_data=x[:32])
    print(r["size_ratio"], r["max_abs_diff"], r["num_sparse_tensors"])
"""

import functools
import inspect

from sbp_tf import export as _export
from sbp_tf.keras3._runtime import check_model, require_tensorflow

__all__ = ["convert", "export_for_run", "size_report", "time_interpreter",
           "to_tflite", "verify"]


def _checked(step, where):
  """``step`` of :mod:`sbp_tf.export` after the Keras 3 checks."""
  signature = inspect.signature(step)

  @functools.wraps(step)
  def run(*args, **kwargs):
    require_tensorflow("TFLite export")
    model = signature.bind_partial(*args, **kwargs).arguments.get("model")
    check_model(model, f"keras3.export.{where}")
    return step(*args, **kwargs)
  return run


convert = _checked(_export.convert, "convert")
verify = _checked(_export.verify, "verify")
to_tflite = _checked(_export.to_tflite, "to_tflite")
export_for_run = _checked(_export.export_for_run, "export_for_run")
size_report = _export.size_report
time_interpreter = _export.time_interpreter
