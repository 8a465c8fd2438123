"""Reproduce the paper's tables: ``tools/reproduce.py`` from anywhere.

The program is the repository's ``tools/reproduce.py`` (a wheel carries a
copy, see :mod:`sbp_tf.bundle`); this module runs it, so that an installed
sbp_tf offers it as ``python -m sbp_tf.reproduce`` and ``sbp-reproduce``::

    sbp-reproduce --experiment=table1 --scale=smoke --workdir=/tmp/r
    python -m sbp_tf.reproduce --help

Flags and outputs: docs/reproduce.md.
"""

from sbp_tf import bundle


def run_main():
  """Console-script entry point (``sbp-reproduce``)."""
  bundle.run_tool("reproduce")


if __name__ == "__main__":
  run_main()
