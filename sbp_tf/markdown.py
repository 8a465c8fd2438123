"""Markdown tables, the one way every report and benchmark writes them.

Usage::

    from sbp_tf import markdown
    markdown.table(["layer", "kept"], [["dense", 12]], align="lr")
    # '| layer | kept |\\n|---|---:|\\n| dense | 12 |\\n'
"""

from typing import Iterable, Optional, Sequence


def cell(value, digits: int = 4) -> str:
  """A table cell: floats with ``digits`` decimals, None as an empty cell,
  ``|`` escaped."""
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.{digits}f}"
  return str(value).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence],
          align: Optional[str] = None, digits: int = 4) -> str:
  """A markdown table of ``rows`` under ``header``, ending in a newline.

  Args:
    header: column titles.
    rows: one sequence of cells per row (see :func:`cell`); strings are
      written as given.
    align: one letter per column, ``l`` (left), ``r`` (right) or ``c``
      (centre); default all left.
    digits: decimals of float cells.

  Raises:
    ValueError: a row or ``align`` of another length than ``header``.
  """
  n = len(header)
  align = align or "l" * n
  if len(align) != n or set(align) - set("lrc"):
    raise ValueError(f"align={align!r} must hold one of l/r/c per column "
                     f"({n}). Fix: e.g. align={'l' + 'r' * (n - 1)!r}.")
  rule = {"l": "---", "r": "---:", "c": ":---:"}
  lines = [_line(header),
           "|" + "|".join(rule[a] for a in align) + "|"]
  for i, row in enumerate(rows):
    row = list(row)
    if len(row) != n:
      raise ValueError(f"row {i} has {len(row)} cells, the header {n}. "
                       "Fix: give every row one cell per column.")
    lines.append(_line(c if isinstance(c, str) else cell(c, digits)
                       for c in row))
  return "\n".join(lines) + "\n"


def _line(cells) -> str:
  """``| a | b |``; an empty cell is written ``| |``."""
  return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"
