"""A file's size next to the dense float32 conversion of the same model."""

from typing import Optional

from sbp_tf.export import conversion


def size_report(content: bytes, model, *,
                dense_float_bytes: Optional[int] = None) -> dict:
  """Size of ``content`` relative to the dense float32 TFLite file of ``model``.

  ``size_ratio = len(content) / dense_float_bytes``, where the reference is
  ``model`` converted with no sparsity and no quantization. That is a second
  full conversion; pass ``dense_float_bytes`` when it is known (e.g.
  ``len(content)`` for a dense float file) to skip it.

  Usage::

      content = conversion.convert(pruned)                     # sparse float
      print(size_report(content, pruned)["size_ratio"])   # e.g. 0.17 at 90%

  Returns:
    dict with ``bytes, dense_float_bytes, size_ratio``.
  """
  if dense_float_bytes is None:
    dense_float_bytes = len(conversion.convert(model, sparse=False, quantize=None))
  return {"bytes": len(content), "dense_float_bytes": int(dense_float_bytes),
          "size_ratio": len(content) / dense_float_bytes}
