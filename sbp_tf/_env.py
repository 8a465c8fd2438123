"""Selects Keras 2 (tf_keras) and quiets TensorFlow before its first import.

tensorflow-model-optimization 0.8.1 only understands Keras 2 models, and
TensorFlow >= 2.16 defaults ``tf.keras`` to Keras 3 unless the environment
variable ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow's first import.
Every entry point of this project imports this module first.

TensorFlow's start-up notices (oneDNN, "Could not find cuda drivers", CPU
instructions, absl's ``InitializeLog`` banner) and its Python INFO/WARNING
lines are hidden unless the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves:
with the variable set (e.g. ``TF_CPP_MIN_LOG_LEVEL=0``) TensorFlow logs
exactly as it would without sbp_tf. See docs/training.md.
"""

import contextlib
import os
import re
import sys
import tempfile

# Only a user who chose a level opts out. The marker tells child processes
# (which inherit the variable) that sbp_tf chose it, not the user.
_MARKER = "SBP_TF_SET_TF_CPP_MIN_LOG_LEVEL"
QUIET = ("TF_CPP_MIN_LOG_LEVEL" not in os.environ or
         os.environ.get(_MARKER) == os.environ["TF_CPP_MIN_LOG_LEVEL"])

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if QUIET:
  # TensorFlow's C++ INFO/WARNING chatter hides the output people care about.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ[_MARKER] = os.environ["TF_CPP_MIN_LOG_LEVEL"]

if os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
  raise ImportError(
      "sbp_tf needs Keras 2 (tf_keras) but TF_USE_LEGACY_KERAS="
      f"{os.environ['TF_USE_LEGACY_KERAS']!r} is set. Unset it or set it to 1 "
      "before importing TensorFlow.")

# The start-up lines TensorFlow writes to stderr while its libraries load.
# They come from absl's C++ logging before absl::InitializeLog, which ignores
# TF_CPP_MIN_LOG_LEVEL, so setting the variable alone does not hide them.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers"
    r"|cpu_feature_guard\.cc"
    r"|^To enable the following instructions:")


@contextlib.contextmanager
def quiet_tensorflow_startup():
  """Hides TensorFlow's known start-up notices written to stderr in the block.

  Wraps the first ``import tensorflow`` (sbp_tf.compat): file descriptor 2 is
  sent to a temporary file, and every line that is not one of the known
  notices is written back to stderr afterwards, so real errors still show.
  Does nothing when the user set ``TF_CPP_MIN_LOG_LEVEL`` or TensorFlow is
  already imported.
  """
  if not QUIET or "tensorflow" in sys.modules:
    yield
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded)
    yield
    return
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield
    finally:
      try:
        sys.stderr.flush()
      except (OSError, ValueError):
        pass
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      kept = [line for line in capture.read().splitlines(keepends=True)
              if not _STARTUP_NOISE.search(line.decode("utf-8", "replace"))]
      if kept:
        os.write(2, b"".join(kept))


def quiet_tensorflow_python_logs(tf) -> None:
  """Shows only errors of TensorFlow's Python logger (the ``tensorflow``
  logger: deprecation and retracing warnings), like TF_CPP_MIN_LOG_LEVEL=2
  does for its C++ side; unchanged when the user set the variable."""
  if QUIET:
    tf.get_logger().setLevel("ERROR")
