"""The benchmark (``tools/benchmark.py``, sections in ``tools/bench/``)
from anywhere: an installed sbp_tf (whose wheel carries a copy, see
:mod:`sbp_tf.bundle`) offers it as ``sbp-benchmark`` and
``python -m sbp_tf.benchmark``, e.g. ``sbp-benchmark --quick``.
Flags and outputs: ``--help``, docs/benchmark.md.
"""

from sbp_tf import bundle

run_main = bundle.tool_main("benchmark")  # console script sbp-benchmark

if __name__ == "__main__":
  run_main()
