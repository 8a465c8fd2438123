"""Diagnostics on constructed masks: collapse, connectivity, critical sparsity."""

import re

import numpy as np
import pytest

from sbp_tf import models, pruning
from sbp_tf.compat import keras


def _ffnn():
  keras.utils.set_random_seed(0)
  return keras.Sequential([
      keras.layers.Dense(4, activation="relu", input_shape=(3,), name="a"),
      keras.layers.Dense(4, activation="tanh", name="b"),
      keras.layers.Dense(2, name="c")])


def test_collapsed_layers():
  masks = {"a/kernel": np.ones((3, 4)), "b/kernel": np.zeros((4, 4)),
           "c/kernel": np.eye(4, 2)}
  assert pruning.collapsed_layers(masks) == ["b/kernel"]


def test_connectivity_constructed_cases():
  m = _ffnn()
  before = m.get_weights()
  full = {"a/kernel": np.ones((3, 4)), "b/kernel": np.ones((4, 4)),
          "c/kernel": np.ones((4, 2))}
  assert pruning.connectivity(m, full).connected
  # No layer empty, yet no path: a feeds only hidden unit 0, b reads only 1.
  cut = dict(full)
  cut["a/kernel"] = np.zeros((3, 4))
  cut["a/kernel"][:, 0] = 1
  cut["b/kernel"] = np.zeros((4, 4))
  cut["b/kernel"][1, :] = 1
  c = pruning.connectivity(m, cut)
  assert not c.connected and c.reachable_fraction == 0.0
  assert not pruning.collapsed_layers(cut)
  # One output cut off: half the outputs reachable.
  half = dict(full)
  half["c/kernel"] = np.zeros((4, 2))
  half["c/kernel"][:, 0] = 1
  assert pruning.connectivity(m, half).reachable_fraction == 0.5
  for a, b in zip(m.get_weights(), before):
    np.testing.assert_array_equal(a, b)  # state restored


def test_connectivity_ignores_activations_with_nonzero_value_at_zero():
  # sigmoid(0) = 0.5 and softplus(0) = log 2 would make a cut-off output
  # look reachable; the check runs with every activation the identity.
  keras.utils.set_random_seed(0)
  m = keras.Sequential([
      keras.layers.Dense(4, activation="sigmoid", input_shape=(3,), name="a"),
      keras.layers.Dense(2, activation="softplus", name="b")])
  act = m.get_layer("a").activation
  masks = {"a/kernel": np.ones((3, 4)), "b/kernel": np.zeros((4, 2))}
  masks["b/kernel"][:, 1] = 1
  c = pruning.connectivity(m, masks)
  assert not c.connected and c.reachable_fraction == 0.5
  assert m.get_layer("a").activation is act  # restored


def test_skip_connection_keeps_connectivity():
  inp = keras.Input((4,))
  h = keras.layers.Dense(4, activation="relu", name="branch")(inp)
  h = keras.layers.Add()([inp, h])
  out = keras.layers.Dense(2, name="head")(h)
  m = keras.Model(inp, out)
  masks = {"branch/kernel": np.zeros((4, 4)), "head/kernel": np.ones((4, 2))}
  assert pruning.connectivity(m, masks).connected


def test_critical_sparsity_is_tight():
  rng = np.random.default_rng(0)
  scores = {"a": rng.random((6, 5)), "b": 0.5 * rng.random((5, 4)),
            "c": rng.random((4, 3))}
  n = 30 + 20 + 12
  crit = pruning.critical_sparsity(scores)
  k = round((1 - crit.sparsity) * n)
  at = pruning.select(scores, (n - k) / n)
  below = pruning.select(scores, (n - k + 1) / n)
  assert not pruning.collapsed_layers(at)
  assert pruning.collapsed_layers(below) == [crit.bottleneck]
  # Brute force: the largest k that collapses a layer is k - 1.
  ks = [j for j in range(n + 1)
        if pruning.collapsed_layers(pruning.select(scores, (n - j) / n))]
  assert max(ks) == k - 1
  # 'smallest' (GraSP) ranks by the negated score.
  neg = pruning.critical_sparsity({key: -v for key, v in scores.items()},
                                  keep="smallest")
  assert neg.sparsity == pytest.approx(crit.sparsity)


def test_prune_on_collapse_modes():
  m = _ffnn()
  before = m.get_weights()
  with pytest.raises(ValueError, match="fully pruned layer.*critical sparsity"):
    pruning.prune(m, "magnitude", 0.95, on_collapse="error")
  for a, b in zip(m.get_weights(), before):
    np.testing.assert_array_equal(a, b)
  with pytest.warns(UserWarning, match="fully pruned"):
    res = pruning.prune(m, "magnitude", 0.95, on_collapse="warn")
  assert res.diagnostics["collapsed"] and res.diagnostics["connected"] is False
  m2 = _ffnn()
  res = pruning.prune(m2, "magnitude", 0.2)
  assert res.diagnostics["connected"] and not res.diagnostics["collapsed"]
  assert res.diagnostics["critical_sparsity"] >= 0.2


def _stable_rank(cat):
  """Reference ranking: stable argsort of -cat (earlier index wins ties)."""
  rank = np.empty(cat.size, np.int64)
  rank[np.argsort(-cat, kind="stable")] = np.arange(cat.size)
  return rank


def _random_pool(rng, kind, size_range, dtype):
  """1-4 layer sizes in ``size_range`` and their concatenated scores:
  'ties' (few levels), 'dead' (half -inf, as iterative pruning ranks dead
  weights, the rest tied), else normal."""
  sizes = [int(n) for n in rng.integers(*size_range, rng.integers(1, 5))]
  n = sum(sizes)
  if kind == "ties":
    cat = rng.integers(0, 3, n)
  elif kind == "dead":
    cat = np.where(rng.random(n) < 0.5, -np.inf, rng.integers(0, 2, n))
  else:
    cat = rng.normal(size=n)
  return sizes, cat.astype(dtype)


def _layers(cat, sizes, float32_odd=False):
  """Per-layer score dict over consecutive slices of ``cat``; with
  ``float32_odd`` every other layer is float32 (``cat`` rounded to match)."""
  scores, start = {}, 0
  for i, size in enumerate(sizes):
    seg = cat[start:start + size]
    if float32_odd and i % 2:
      seg = seg.astype(np.float32)
      cat[start:start + size] = seg
    scores[f"l{i}/kernel"] = seg
    start += size
  return scores


def _check_select_matches_stable_sort(scores, cat):
  rank = _stable_rank(cat)
  n = cat.size
  for k in range(n + 1):
    got = np.concatenate([m.ravel() for m in
                          pruning.select(scores, (n - k) / n).values()])
    np.testing.assert_array_equal(got, (rank < k).astype(np.float32))
  return rank


@pytest.mark.parametrize("kind", ["ties", "normal", "dead"])
def test_selection_and_critical_sparsity_match_a_full_stable_sort(kind):
  # The linear-time top-k and the filtered critical-sparsity count must give
  # what ranking every weight by a stable sort gives, ties included.
  rng = np.random.default_rng({"ties": 1, "normal": 2, "dead": 3}[kind])
  for _ in range(300):
    sizes, cat = _random_pool(rng, kind, (1, 7), np.float32)
    n = cat.size
    scores = _layers(cat, sizes)
    rank = _check_select_matches_stable_sort(scores, cat)
    crit = pruning.critical_sparsity(scores)
    start = 0
    for i, size in enumerate(sizes):
      r = int(rank[start:start + size].min())
      assert crit.per_layer[f"l{i}/kernel"] == pytest.approx(1 - (r + 1) / n)
      start += size


@pytest.mark.parametrize("kind", ["ties", "normal", "dead", "mixed"])
def test_sampled_threshold_gives_the_stable_sort_masks(kind, monkeypatch):
  # Large pools find the k-th largest from a sampled bracket; shrink the
  # sample so small pools take that path too, and check both of its
  # outcomes (bracket holds it / falls back to a full partition).
  from sbp_tf.pruning import threshold  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(threshold, "_SAMPLE", 4)
  outcomes = []
  real = threshold._kth_largest_by_sample

  def spy(*a):
    t = real(*a)
    outcomes.append(t is not None)
    return t
  monkeypatch.setattr(threshold, "_kth_largest_by_sample", spy)
  rng = np.random.default_rng({"ties": 4, "normal": 5, "dead": 6,
                               "mixed": 7}[kind])
  for _ in range(40):
    sizes, cat = _random_pool(rng, kind, (5, 40), np.float64)
    scores = _layers(cat, sizes, float32_odd=kind == "mixed")
    _check_select_matches_stable_sort(scores, cat)
  assert any(outcomes) and not all(outcomes), outcomes.count(True)


def test_tied_bracket_gives_the_sorted_kth_largest(monkeypatch):
  # Inside a bracket [lo, hi] the k-th largest comes from counting the
  # copies of hi and lo, then partitioning the open interval (ends tied in
  # bulk: pruned weights score 0) or, when the ends hold at most 1/8 of the
  # values, the bracket as it is: checked against a full sort, with each of
  # the four outcomes reached.
  from sbp_tf.pruning import threshold  # pylint: disable=g-import-not-at-top
  partitioned = []
  real = threshold._kth_largest_inplace
  monkeypatch.setattr(threshold, "_kth_largest_inplace", lambda v, k: (
      partitioned.append(v.size), real(v, k))[1])
  rng = np.random.default_rng(8)
  reached = set()
  for _ in range(300):
    lo, hi = sorted(rng.choice([0.0, 0.25, 0.5, 1.0], 2, replace=False))
    n_lo, n_hi = rng.integers(0, 50, 2) * rng.integers(0, 2, 2)
    mid = rng.uniform(lo, hi, rng.integers(0, 120))
    mid = mid[(mid > lo) & (mid < hi)]
    inside = rng.permutation(np.concatenate(
        [np.full(n_lo, lo), np.full(n_hi, hi), mid]))
    for need in range(1, inside.size + 1):
      want = np.sort(inside)[::-1][need - 1]
      partitioned.clear()
      got = threshold._kth_largest_tied(inside.copy(), need, lo, hi)
      assert got == want
      reached.add("hi" if not partitioned and got == hi else
                  "lo" if not partitioned else
                  "whole" if partitioned == [inside.size] else "open")
      if partitioned:
        assert (partitioned == [inside.size]) == (n_lo + n_hi <=
                                                  inside.size // 8)
  assert reached == {"hi", "lo", "whole", "open"}


def test_full_partition_counts_a_mass_of_dead_weights(monkeypatch):
  # Pools below the sampling size are one bracket [min, max]: with 90% of
  # the weights dead (-inf) only the live ones below the maximum are
  # partitioned, and the masks equal a stable descending sort's.
  from sbp_tf.pruning import threshold  # pylint: disable=g-import-not-at-top
  partitioned = []
  real = threshold._kth_largest_inplace
  monkeypatch.setattr(threshold, "_kth_largest_inplace", lambda v, k: (
      partitioned.append(v.size), real(v, k))[1])
  rng = np.random.default_rng(10)
  imp = rng.normal(size=(3000,))
  alive = (rng.uniform(size=imp.size) < 0.1).astype(np.float32)
  masks = threshold.select({"a": imp[:1000], "b": imp[1000:]}, 0.05,
                           alive={"a": alive[:1000], "b": alive[1000:]})
  order = np.argsort(-np.where(alive > 0, imp, -np.inf), kind="stable")
  want = np.zeros(imp.size, np.float32)
  want[order[:150]] = 1.0
  np.testing.assert_array_equal(np.concatenate([masks["a"], masks["b"]]),
                                want)
  assert partitioned == [int(alive.sum()) - 1]


def test_best_ranks_match_a_stable_sort_with_collapsed_layers():
  # Each layer's best weight ranked by a full stable descending sort, on
  # pools where some layers are all 0 (collapsed: every weight reaches the
  # floor) and maxima tie across layers.
  from sbp_tf.pruning import diagnostics  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(9)
  for _ in range(200):
    segs = [rng.choice([0.0, 0.5, 1.0, 2.0], rng.integers(1, 9))
            for _ in range(rng.integers(1, 6))]
    for i in rng.choice(len(segs), rng.integers(0, 3)):
      segs[i] = np.zeros_like(segs[i])
    cat = np.concatenate(segs)
    rank = np.empty(cat.size, np.int64)
    rank[np.argsort(-cat, kind="stable")] = np.arange(cat.size)
    starts = np.cumsum([0] + [s.size for s in segs[:-1]])
    want = [int(rank[st:st + s.size].min()) for st, s in zip(starts, segs)]
    assert diagnostics._best_ranks(segs) == want


def test_collapse_warning_fix_matches_the_critical_sparsity():
  """Above the critical sparsity the fix is to lower the sparsity to it;
  below it (cut without a whole layer pruned), saying so would contradict
  the number quoted: the message says the paths are cut before any layer
  is emptied."""
  with pytest.raises(ValueError) as above:
    pruning.prune(_ffnn(), "magnitude", 0.95, on_collapse="error")
  crit = re.search(r"is (0\.\d{4})\. Fix: lower the sparsity to at most "
                   r"(0\.\d{4})", str(above.value))
  assert crit and crit.group(1) == crit.group(2)
  assert float(crit.group(1)) < 0.95
  x = np.random.default_rng(0).normal(size=(64, 28, 28, 1)).astype("float32")
  y = np.arange(64) % 10
  model = models.build("vcnn", 10, (28, 28, 1), depth=3, width=8, seed=0)
  with pytest.raises(ValueError) as below:
    pruning.prune(model, "sbp", 0.9, data=(x, y), seed=0, on_collapse="error")
  msg = str(below.value)
  crit = float(re.search(r"critical sparsity of this score is (0\.\d{4})",
                         msg).group(1))
  assert "outputs disconnected" in msg and crit > 0.9
  assert "paths are cut before any layer is emptied" in msg
  assert "lower the sparsity to" not in msg
