"""The benchmark: ``tools/benchmark.py`` from anywhere.

The program is the repository's ``tools/benchmark.py`` and its sections in
``tools/bench/`` (a wheel carries a copy, see :mod:`sbp_tf.bundle`); this
module runs it, so that an installed sbp_tf offers it as
``python -m sbp_tf.benchmark`` and ``sbp-benchmark``::

    sbp-benchmark --quick --out_dir=/tmp/bench
    python -m sbp_tf.benchmark --help

Flags and outputs: docs/benchmark.md.
"""

from sbp_tf import bundle


def run_main():
  """Console-script entry point (``sbp-benchmark``)."""
  bundle.run_tool("benchmark")


if __name__ == "__main__":
  run_main()
