"""The TFLite runtime that runs exported files: LiteRT, else ``tf.lite``.

LiteRT (the ``ai_edge_litert`` package, a dependency of sbp_tf) is the
runtime TensorFlow points TFLite users to; ``tf.lite.Interpreter`` is its
deprecated predecessor with the same API, used when LiteRT is not installed.
Creating an interpreter runs inside :func:`sbp_tf._env.quiet_stderr`, which
drops the runtime's "Created TensorFlow Lite XNNPACK delegate" notice.

Usage::

    interp = tflite_runtime.interpreter(content)    # allocated
    tflite_runtime.NAME                              # 'ai_edge_litert' / 'tf.lite'
"""

import warnings

from sbp_tf import _env

try:
  from ai_edge_litert import interpreter as _litert  # pylint: disable=g-import-not-at-top
  NAME = "ai_edge_litert"
except ImportError:  # an install without LiteRT: TensorFlow's own copy
  _litert = None
  NAME = "tf.lite"


def _module():
  """The module holding ``Interpreter`` and ``OpResolverType``."""
  if _litert is not None:
    return _litert
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return _TfLite(tf)


class _TfLite:
  """``tf.lite`` seen with LiteRT's names (Interpreter, OpResolverType)."""

  def __init__(self, tf):
    self.Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
    self.OpResolverType = tf.lite.experimental.OpResolverType  # pylint: disable=invalid-name


def interpreter(content: bytes, *, builtin_only: bool = False):
  """An allocated interpreter of the flatbuffer ``content``.

  ``builtin_only`` runs the builtin kernels without the default delegates
  (XNNPACK), for graphs a delegate refuses.
  """
  mod = _module()
  kwargs = {}
  if builtin_only:
    kwargs["experimental_op_resolver_type"] = (
        mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  with warnings.catch_warnings(), _env.quiet_stderr():
    # tf.lite.Interpreter warns that it moves to LiteRT (the fallback only).
    warnings.filterwarnings("ignore", message=".*Interpreter is deprecated")
    interp = mod.Interpreter(model_content=content, **kwargs)
    interp.allocate_tensors()
  return interp
