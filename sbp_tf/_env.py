"""Selects Keras 2 (tf_keras) and quiets TensorFlow before its first import.

tensorflow-model-optimization 0.8.1 only understands Keras 2 models, and
TensorFlow >= 2.16 defaults ``tf.keras`` to Keras 3 unless the environment
variable ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow's first import.
Every entry point of this project imports this module first.

TensorFlow's log lines are held to ``TF_CPP_MIN_LOG_LEVEL`` (2 when the
user set none: warnings and infos hidden), also those that ignore it: the
start-up notices (oneDNN, "Could not find cuda drivers", CPU instructions,
absl's ``InitializeLog`` banner, which a user's own level 2 would otherwise
see twice), the failed cuInit of a machine without a GPU, and the TFLite
converter's lines (sbp_tf.export). Its Python INFO/WARNING lines are hidden
unless the user set the variable. With ``TF_CPP_MIN_LOG_LEVEL=0`` TensorFlow
logs exactly as it would without sbp_tf. See docs/training.md.
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

# A line of TensorFlow's C++ (absl) log: severity letter, date, time, thread,
# file:line]. Before absl::InitializeLog (the start-up notices) and in the
# TFLite converter these ignore TF_CPP_MIN_LOG_LEVEL, so it alone hides none.
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:]+\.\d+\s+\d+ \S+:\d+\]")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# Notices without that prefix, each an INFO line in effect.
_INFO_NOTICES = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|^To enable the following instructions:"  # cpu_feature_guard's 2nd line
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate")
# TensorFlow's CUDA build probing a GPU on a machine that has none.
_CUINIT = re.compile(r"failed call to cuInit")


def log_level() -> int:
  """TensorFlow's C++ log level in force: ``TF_CPP_MIN_LOG_LEVEL`` (the
  user's, or the 2 set above); 0 = everything."""
  try:
    return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
  except ValueError:
    return 0


def has_nvidia_device() -> bool:
  """Whether the machine exposes an NVIDIA GPU (a /dev/nvidia* node)."""
  return (os.path.exists("/dev/nvidiactl") or
          any(name.startswith("nvidia") and name[6:].isdigit()
              for name in _listdir("/dev")))


def _listdir(path):
  try:
    return os.listdir(path)
  except OSError:
    return []


def hidden(line: str, level: int, gpu_machine: bool) -> bool:
  """Whether a stderr ``line`` of TensorFlow is below log ``level``.

  absl log lines of a severity below ``level`` (I=0, W=1, E=2) and the
  prefix-less INFO notices when ``level >= 1``; the cuInit failure too on a
  machine without a GPU (``gpu_machine`` False), where it is expected.
  """
  m = _ABSL_LINE.match(line)
  if m:
    if _CUINIT.search(line) and not gpu_machine and level >= 1:
      return True
    return _SEVERITY[m.group(1)] < level
  return level >= 1 and bool(_INFO_NOTICES.search(line))


@contextlib.contextmanager
def quiet_stderr():
  """Drops TensorFlow's log lines below :func:`log_level` written to stderr
  in the block (see :func:`hidden`); every other line is written back.

  File descriptor 2 goes to a temporary file meanwhile, so the lines of C++
  code (start-up notices, the TFLite converter) are caught too. Does
  nothing at level 0 (the user asked for every line).
  """
  level = log_level()
  if level == 0:
    yield
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded)
    yield
    return
  gpu = has_nvidia_device()
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
              if not hidden(line.decode("utf-8", "replace"), level, gpu)]
      if kept:
        os.write(2, b"".join(kept))


@contextlib.contextmanager
def quiet_tensorflow_startup():
  """Hides TensorFlow's start-up notices below the log level: wraps the
  first ``import tensorflow`` (sbp_tf.compat) in :func:`quiet_stderr`.
  Does nothing when TensorFlow is already imported."""
  if "tensorflow" in sys.modules:
    yield
    return
  with quiet_stderr():
    yield


def probe_devices(tf) -> None:
  """Lists TensorFlow's GPUs inside :func:`quiet_stderr` on a machine with
  no NVIDIA device: the CUDA build's cuInit failure is expected there and
  would otherwise print on the first operation. Logical devices can still
  be configured afterwards (physical devices are listed, not initialized).
  """
  if not has_nvidia_device():
    with quiet_stderr():
      tf.config.list_physical_devices("GPU")


def quiet_tensorflow_python_logs(tf) -> None:
  """Shows only errors of TensorFlow's Python logger (the ``tensorflow``
  logger: deprecation and retracing warnings), like TF_CPP_MIN_LOG_LEVEL=2
  does for its C++ side; unchanged when the user set the variable."""
  if QUIET:
    tf.get_logger().setLevel("ERROR")
