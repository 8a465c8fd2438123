"""Spearman's rank correlation of tools/reproduce_stats.py.

Welch's t-test is checked against scipy in tests/test_reproduce.py.
"""

import math

import numpy as np
import pytest

from tools import reproduce_stats as rs


def test_ranks_average_over_ties():
  np.testing.assert_array_equal(rs.ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
  np.testing.assert_array_equal(rs.ranks([3.0, 3.0, 3.0]), [2, 2, 2])
  np.testing.assert_array_equal(rs.ranks([0.3, 0.1, 0.2]), [3, 1, 2])


def test_spearman_without_ties_is_the_squared_rank_difference_formula():
  # ranks x = 3, 2, 1; ranks y = 3, 1, 2; sum d^2 = 2 -> 1 - 6*2/(3*8).
  assert rs.spearman([0.9, 0.8, 0.7], [92.1, 91.0, 91.5]) == pytest.approx(
      0.5, abs=1e-15)
  x = [0.61, 0.72, 0.55, 0.80, 0.68]      # ranks 2, 4, 1, 5, 3
  y = [88.1, 87.2, 85.0, 90.3, 89.9]      # ranks 3, 2, 1, 5, 4
  d2 = 1 + 4 + 0 + 0 + 1
  assert rs.spearman(x, y) == pytest.approx(1 - 6 * d2 / (5 * 24), abs=1e-15)
  assert rs.spearman(x, [v ** 3 for v in x]) == pytest.approx(1.0)
  assert rs.spearman(x, [-v for v in x]) == pytest.approx(-1.0)


def test_spearman_with_ties_is_pearson_of_average_ranks():
  # ranks x = 1..5; ranks y = 1, 2, 3.5, 5, 3.5 (the two 7s share 3.5).
  # Centred: dx = -2..2, dy = -2, -1, .5, 2, .5: sum dx dy = 8,
  # sum dx^2 = 10, sum dy^2 = 9.5.
  got = rs.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
  assert got == pytest.approx(8 / math.sqrt(95), abs=1e-15)
  # Ties on both sides: ranks 1.5, 1.5, 3, 4 and 1, 2.5, 2.5, 4.
  rx, ry = np.array([1.5, 1.5, 3, 4]), np.array([1, 2.5, 2.5, 4])
  rx, ry = rx - rx.mean(), ry - ry.mean()
  want = (rx @ ry) / math.sqrt((rx @ rx) * (ry @ ry))
  assert rs.spearman([2, 2, 5, 9], [0.1, 0.4, 0.4, 0.8]) == pytest.approx(
      want, abs=1e-15)


def test_spearman_none_where_undefined_and_bad_input():
  assert rs.spearman([1, 2], [3, 4]) is None           # fewer than 3 pairs
  assert rs.spearman([1, 2, 3], [5, 5, 5]) is None     # constant side
  assert rs.spearman([4, 4, 4], [1, 2, 3]) is None
  # Pairs with a None are dropped: 3 pairs left, same order.
  assert rs.spearman([1, None, 2, 3], [1, 5, 2, 3]) == pytest.approx(1.0)
  assert rs.spearman([1, 2, 3, None], [1, 2, None, 3]) is None
  with pytest.raises(ValueError, match="paired values"):
    rs.spearman([1, 2, 3], [1, 2])


def test_spearman_matches_scipy_when_installed():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(7)
  for n in (3, 4, 7, 12):
    for _ in range(20):
      # Small integers: many ties on both sides.
      x, y = rng.integers(0, 4, n), rng.integers(0, 4, n)
      got = rs.spearman(x, y)
      if len(set(x)) == 1 or len(set(y)) == 1:  # scipy: nan and a warning
        assert got is None
        continue
      ref = stats.spearmanr(x, y).statistic
      assert got == pytest.approx(ref, abs=1e-12), (x, y)
