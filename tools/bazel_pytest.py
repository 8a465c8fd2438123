"""Runs one pytest file as a Bazel py_test: ``bazel_pytest.py tests/test_x.py``."""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402


def main(argv):
  if len(argv) != 2:
    raise SystemExit("usage: bazel_pytest.py <tests/test_file.py>")
  # Bazel runs tests from the runfiles tree; pytest.ini sits at its root.
  return pytest.main(["-q", "-p", "no:cacheprovider", argv[1]])


if __name__ == "__main__":
  sys.exit(main(sys.argv))
