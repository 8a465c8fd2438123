"""Export a pruned Keras model to a sparse (optionally quantized) TFLite file.

The stripped model is converted with ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``
so TFLite stores pruned weight tensors in a compressed sparse format (plus
quantization on request). The export is split into steps, each usable alone:

- :func:`convert`: model -> ``.tflite`` bytes (strips mask wrappers);
- :func:`verify`: runs the bytes in the TFLite interpreter and compares the
  outputs with Keras on the same inputs;
- :func:`size_report`: size relative to a dense float32 conversion (a second,
  full conversion, so only when asked);
- :func:`time_interpreter`: median interpreter latency (only when asked).

Two compositions: :func:`export_for_run` (convert, atomic write, verify: the
cheap one for training runs) and :func:`to_tflite` (all four steps).

Usage::

    report = sbp_tf.export.to_tflite(pruned, "model.tflite",
                                     representative_data=x_test[:64])
    print(report["size_ratio"], report["max_abs_diff"], report["sparse_tensors"])

    report = sbp_tf.export.export_for_run(pruned, "run/model.tflite")
    assert report["verified"], report
"""

from sbp_tf.export.compose import export_for_run, to_tflite
from sbp_tf.export.conversion import convert
from sbp_tf.export.sizes import size_report
from sbp_tf.export.timing import time_interpreter
from sbp_tf.export.verification import verify

__all__ = ["convert", "verify", "size_report", "time_interpreter",
           "export_for_run", "to_tflite"]
