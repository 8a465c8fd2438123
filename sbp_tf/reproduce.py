"""Reproduce the paper's tables: ``tools/reproduce.py`` from anywhere.

The program is the repository's ``tools/reproduce.py`` (a wheel carries a
copy, see :mod:`sbp_tf.bundle`), offered by an installed sbp_tf as
``sbp-reproduce`` and ``python -m sbp_tf.reproduce``, e.g.
``sbp-reproduce --experiment=table1 --scale=smoke --workdir=/tmp/r``.
Flags and outputs: ``--help``, docs/reproduce.md.
"""

from sbp_tf import bundle

run_main = bundle.tool_main("reproduce")  # console script sbp-reproduce

if __name__ == "__main__":
  run_main()
