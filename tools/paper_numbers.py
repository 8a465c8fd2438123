"""Published numbers of Hayou et al. (ICLR 2021) shown beside measured cells.

Only numbers we are sure of are recorded; every other cell is absent (the
tables print "n/a" there) rather than filled from memory. Keys are
``(row, column)`` labels exactly as the experiment definitions in
``tools/reproduce_experiments.py`` name them. Values are strings: a number as
printed in the paper (test accuracy in %), or a short quoted claim where the
paper's point is qualitative (Table 4's "fails" = chance accuracy).

Usage::

    from tools import paper_numbers
    paper_numbers.lookup("table1", "ResNet32 / SBP-SR (stable)", "99.9%")
    # -> '51.56'
"""

from typing import Dict, Optional, Tuple

# Where each experiment's numbers come from in the paper.
SOURCES = {
    "table1": "Table 1 (CIFAR-10, ResNet32/50/104, SNIP vs SBP-SR)",
    "table2": "Table 2 (CIFAR-10/100, all pruning methods)",
    "table4": "Table 4 (V-CNN on MNIST, 50% sparsity)",
    "table5": "Table 5 (VGG16 / 3xVGG16 on CIFAR-10)",
    "table9": "Table 9 (ReLU vs tanh ResNets)",
    "collapse": "Section 3-4 (layer collapse); no table of numbers",
}

_NUMBERS: Dict[str, Dict[Tuple[str, str], str]] = {
    "table1": {
        ("ResNet32 / SNIP (standard)", "99.9%"): "9.98",
        ("ResNet32 / SBP-SR (stable)", "99.9%"): "51.56",
    },
    # The paper's qualitative outcome of Table 4 (its headline claim): the
    # ordered-phase init does not train from depth 50, the EOC init without
    # rescaling does not train at depth 100, EOC + rescaling trains there.
    "table4": {
        ("Ordered phase", "L=50"): "fails",
        ("Ordered phase", "L=100"): "fails",
        ("EOC", "L=100"): "fails",
        ("EOC + rescaling", "L=100"): "trains",
    },
    "table2": {},
    "table5": {},
    "table9": {},
    "collapse": {},
}


def lookup(experiment: str, row: str, col: str) -> Optional[str]:
  """The published value for one cell, or None when we do not record one.

  Example: ``lookup('table1', 'ResNet32 / SNIP (standard)', '99.9%')`` ->
  ``'9.98'``.
  """
  if experiment not in _NUMBERS:
    raise ValueError(f"unknown experiment {experiment!r}. Fix: use one of "
                     f"{sorted(_NUMBERS)}.")
  return _NUMBERS[experiment].get((row, col))


def cells(experiment: str) -> Dict[Tuple[str, str], str]:
  """All recorded ``(row, col) -> value`` cells of an experiment (a copy)."""
  if experiment not in _NUMBERS:
    raise ValueError(f"unknown experiment {experiment!r}. Fix: use one of "
                     f"{sorted(_NUMBERS)}.")
  return dict(_NUMBERS[experiment])


def is_failure(value: Optional[str]) -> bool:
  """True for the qualitative 'fails' claims (chance accuracy expected)."""
  return value == "fails"
