"""Published numbers of Hayou et al. (ICLR 2021) shown beside measured cells.

Every number comes from ``tools/paper_tables.json``, a verbatim copy of the
transcription in ``shared/paper/tables.json`` (each cell a string exactly as
printed, e.g. ``"51.56 ± 1.12"``); nothing is typed in here. This module only
maps the row/column labels of ``tools/reproduce_experiments.py`` onto the
paper's tables. A cell the paper does not print (or prints as ``-``) is
``None`` and the tables show "n/a".

Usage::

    from tools import paper_numbers
    paper_numbers.lookup("table1", "ResNet32 / SBP-SR (stable)", "99.9%")
    # -> '51.56 ± 1.12'
"""

import functools
import json
import pathlib
import re
from typing import Dict, Optional, Tuple

TABLES_JSON = pathlib.Path(__file__).with_name("paper_tables.json")

# Where each experiment's numbers come from in the paper.
SOURCES = {
    "table1": "Table 1 (CIFAR-10, ResNet32/50/104, SNIP vs SBP-SR)",
    "table2": "Table 2 (CIFAR-10 columns; methods on ResNet32/50)",
    "table4": "Table 4 (V-CNN on MNIST, 50% sparsity)",
    "table5": "Table 5 (VGG16 / 3xVGG16 on CIFAR-10)",
    "table9": "Table 9 (ReLU vs tanh ResNets)",
    "collapse": "Sections 3-4 (layer collapse); no table of numbers",
    "extreme": "Table 1 (ResNet32 at 99.5/99.9%; the paper does not say "
               "whether its ResNets used batch norm, so both rows show it)",
}
EXPERIMENTS = tuple(SOURCES)

# Our method labels -> the paper's row labels.
_METHOD = {"SNIP (standard)": "SNIP", "SBP-SR (stable)": "SBP-SR",
           "SNIP": "SNIP", "SBP-SR": "SBP-SR", "GraSP": "GraSP",
           "SynFlow": "SynFlow", "Random": "Random", "Magnitude": "MBP",
           "MBP": "MBP", "OBD": "OBD", "GraSP-SR": "GraSP-SR",
           "no pruning": "no pruning",
           "EOC + rescaling": "EOC + rescaling"}
_MODEL = {"3xVGG16": "3xVGG16"}


@functools.lru_cache(maxsize=1)
def tables() -> Dict[str, dict]:
  """The paper's tables: ``name -> {caption, header, rows}`` (strings)."""
  return json.loads(TABLES_JSON.read_text(encoding="utf-8"))["tables"]


def _cell(table: str, keys: Tuple[str, ...], col: str) -> Optional[str]:
  t = tables()[table]
  header = t["header"]
  if col not in header:
    return None
  n = len(keys)
  for row in t["rows"]:
    if tuple(row[:n]) == keys:
      value = row[header.index(col)]
      return None if value.strip() in ("", "-") else value
  return None


def _split(row: str):
  return [p.strip() for p in row.split(" / ")]


def lookup(experiment: str, row: str, col: str) -> Optional[str]:
  """The published value of one cell as printed, or None.

  Example: ``lookup('table1', 'ResNet32 / SNIP (standard)', '99.9%')`` ->
  ``'9.98 ± 0.08'``.
  """
  if experiment not in SOURCES:
    raise ValueError(f"unknown experiment {experiment!r}. Fix: use one of "
                     f"{sorted(SOURCES)}.")
  parts = _split(row)
  if experiment in ("table1", "table2", "table5"):
    if len(parts) != 2 or parts[1] not in _METHOD:
      return None  # e.g. the rescaling ablation: not in the paper
    col = f"C10 {col}" if experiment == "table2" else col
    return _cell(experiment, (parts[0], _METHOD[parts[1]]), col)
  if experiment == "table4":
    m = re.fullmatch(r"L=(\d+)", col)
    return _cell("table4", (row,), f"L = {m.group(1)}") if m else None
  if experiment == "table9":
    if len(parts) != 2 or parts[1] not in _METHOD:
      return None
    return _cell("table9", ("ResNet32", parts[0], _METHOD[parts[1]]), col)
  if experiment == "extreme":
    # '<BN> / <method>' (ResNet32) or '<model> / <BN> / <method>'.
    if len(parts) not in (2, 3) or parts[-1] not in _METHOD:
      return None
    model = parts[0] if len(parts) == 3 else "ResNet32"
    return _cell("table1", (model, _METHOD[parts[-1]]), col)
  return None  # collapse: the paper prints no numbers for it


def mean_of(value: Optional[str]) -> Optional[float]:
  """The mean of a printed cell (``'51.56 ± 1.12'`` -> 51.56), or None."""
  if not value:
    return None
  m = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)", value)
  return float(m.group(1)) if m else None


def is_failure(value: Optional[str]) -> bool:
  """True when the paper's cell is at chance (10% on 10 classes)."""
  mean = mean_of(value)
  return mean is not None and mean <= 10.5
