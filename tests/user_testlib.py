"""Runs sbp_tf's programs as a user's shell would: a fresh process without
the test session's TensorFlow settings (conftest sets TF_CPP_MIN_LOG_LEVEL),
and recognizes TensorFlow's log lines in what they print."""

import os
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
# A TensorFlow/absl C++ log line ("I0000 00:00:1.2  123 port.cc:153] ..."),
# the pre-InitializeLog banner, cpu_feature_guard's second line, TFLite's
# XNNPACK notice, or a Python-side tensorflow logger line.
TF_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} [\d:]+\.\d+\s+\d+ \S+:\d+\]"
    r"|All log messages before absl::InitializeLog"
    r"|^To enable the following instructions"
    r"|TensorFlow Lite XNNPACK delegate"
    r"|^(WARNING|INFO):tensorflow:", re.M)


def user_env(**extra) -> dict:
  """``os.environ`` minus the test session's TensorFlow log settings, with
  this checkout on PYTHONPATH and ``extra`` set."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "SBP_TF_SET_TF_CPP_MIN_LOG_LEVEL",
                      "TF_USE_LEGACY_KERAS")}
  env["PYTHONPATH"] = str(REPO)
  env.update(extra)
  return env


def run(args, cwd, timeout=300, **extra) -> subprocess.CompletedProcess:
  """``args`` (after the Python interpreter) in a user's environment."""
  return subprocess.run([sys.executable, *args], env=user_env(**extra),
                        cwd=cwd, capture_output=True, text=True,
                        timeout=timeout)


def tf_log_lines(text: str) -> list:
  """The lines of ``text`` that are TensorFlow log lines."""
  return [line for line in text.splitlines() if TF_LOG_LINE.search(line)]
