"""Exponential density schedule for iterative pruning over ``k`` rounds.

After round ``r`` (1-based) the density is ``d_r = d^(r / k)``, so every round
removes the same fraction of the remaining weights and ``d_k = d``
(SynFlow, Tanaka et al. 2020; iterative SNIP / FORCE).

Usage::

    exponential(0.01, 2)   # [0.1, 0.01]
"""

from typing import List


def exponential(density: float, rounds: int) -> List[float]:
  """Densities ``[d^(1/k), d^(2/k), ..., d]`` for ``k = rounds`` rounds."""
  if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
    raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}. Fix: "
                     "pass rounds=1 for one-shot pruning.")
  if not 0.0 <= density <= 1.0:
    raise ValueError(f"density must be in [0, 1], got {density!r}.")
  out = [float(density) ** (r / rounds) for r in range(1, rounds + 1)]
  out[-1] = float(density)  # exact final density, no pow round-off
  return out
