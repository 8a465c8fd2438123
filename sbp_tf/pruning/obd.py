"""Optimal Brain Damage (LeCun et al. 1990) at initialization.

The saliency of weight ``w_i`` is the second-order estimate of the loss
increase when it is deleted, the gradient term dropped as OBD does::

    s_i = 0.5 * H_ii * w_i^2,    H = d^2 L / dW^2

``L`` the saliency loss summed over the scoring batches (as for SNIP and
GraSP: :mod:`saliency`). The highest saliencies are kept; a weight with
``H_ii < 0`` (possible away from a minimum, e.g. at init) scores below 0
and is among the first removed. Scores are signed, not ``|s_i|``: OBD's
ranking.

``diag(H)`` comes from Hessian-vector products on the compiled ``H v`` step
of :class:`saliency.Saliency` (loss plans, ``scoring_mode``, strategies and
the float32 copy of a mixed-precision model apply):

* ``diagonal='exact'``: ``H_ii = e_i^T (H e_i)``, one product per weight
  (``N`` products: small networks only);
* ``diagonal='hutchinson'``: ``diag(H) ~ (1/K) sum_k v_k * (H v_k)`` with
  ``K = probes`` Rademacher vectors ``v_k`` (entries +-1): unbiased, since
  ``E[v_i v_j] = [i = j]``, with per-weight variance
  ``sum_{j != i} H_ij^2 / K`` (the off-diagonal mass of row ``i``);
* ``diagonal='auto'`` (default): exact when the prunable weights number at
  most :data:`EXACT_LIMIT`, Hutchinson otherwise.

The probes are drawn from ``seed`` (``prune(..., seed=)``; None: seed 0,
so a prune is reproducible) and the round index.

Usage::

    pruning.prune(model, "obd", 0.9, data=(x, y), probes=64)
    pruning.score(model, "obd", data=(x, y), diagonal="exact")
"""

import numbers

import numpy as np

from sbp_tf.pruning import scores as methods_lib

# Up to this many prunable weights, diagonal='auto' is exact (one Hessian-
# vector product per weight).
EXACT_LIMIT = 1024
DIAGONALS = ("auto", "exact", "hutchinson")


def exact_diagonal(ctx, chunk: int = 256):
  """``key -> diag(H)`` block of each target, one ``H e_i`` per weight
  (``chunk`` products per call, so a call holds few arrays at once)."""
  keys = [t.key for t in ctx.targets]
  shapes = {t.key: tuple(t.variable.shape) for t in ctx.targets}
  index = [(k, i) for k in keys for i in range(int(np.prod(shapes[k])))]
  diag = {k: np.zeros(int(np.prod(shapes[k]))) for k in keys}
  for start in range(0, len(index), chunk):
    part = index[start:start + chunk]
    basis = []
    for k, i in part:
      v = {kk: np.zeros(shapes[kk]) for kk in keys}
      v[k].reshape(-1)[i] = 1.0
      basis.append(v)
    for (k, i), hv in zip(part, ctx.hessian_vector_products(basis)):
      diag[k][i] = hv[k].reshape(-1)[i]
  return {k: diag[k].reshape(shapes[k]) for k in keys}


def hutchinson_diagonal(ctx, probes: int, seed, chunk: int = 16):
  """``key -> (1/K) sum_k v_k * (H v_k)`` over ``K = probes`` Rademacher
  probes drawn from ``(seed, round)`` (``chunk`` products per call)."""
  rng = np.random.default_rng([0 if seed is None else int(seed),
                               int(ctx.round_index), 0x0BD])
  shapes = {t.key: tuple(t.variable.shape) for t in ctx.targets}
  total = {k: np.zeros(s) for k, s in shapes.items()}
  done = 0
  while done < probes:
    n = min(chunk, probes - done)
    vs = [{k: rng.choice((-1.0, 1.0), size=s) for k, s in shapes.items()}
          for _ in range(n)]
    for v, hv in zip(vs, ctx.hessian_vector_products(vs)):
      for k in total:
        total[k] += v[k] * hv[k]
    done += n
  return {k: t / probes for k, t in total.items()}


@methods_lib.register_method("obd")
class OBD(methods_lib.Method):
  """``0.5 * H_ii * W_i^2`` (Optimal Brain Damage); the highest kept.

  Args:
    diagonal: ``'auto'`` (exact up to :data:`EXACT_LIMIT` weights, else
      Hutchinson), ``'exact'`` or ``'hutchinson'``.
    probes: Rademacher probes of the Hutchinson estimate (cost: one
      Hessian-vector product each, about three backward passes).
  """
  needs_data = True

  def __init__(self, diagonal: str = "auto", probes: int = 32):
    if diagonal not in DIAGONALS:
      raise ValueError(f"obd: diagonal={diagonal!r} is not known. Fix: use "
                       f"one of {DIAGONALS}.")
    if (isinstance(probes, bool) or not isinstance(probes, numbers.Integral)
        or probes < 1):
      raise ValueError(f"obd: probes must be an integer >= 1, got "
                       f"{probes!r}. Fix: e.g. probes=32.")
    self.diagonal = diagonal
    self.probes = int(probes)

  def resolved_diagonal(self, ctx) -> str:
    """``'exact'`` or ``'hutchinson'``: what ``diagonal`` means for
    ``ctx``'s targets."""
    if self.diagonal != "auto":
      return self.diagonal
    n = sum(int(np.prod(t.variable.shape)) for t in ctx.targets)
    return "exact" if n <= EXACT_LIMIT else "hutchinson"

  def score(self, ctx):
    if self.resolved_diagonal(ctx) == "exact":
      h = exact_diagonal(ctx)
    else:
      h = hutchinson_diagonal(ctx, self.probes, ctx.seed)
    w = ctx.weights()
    return {k: 0.5 * h[k] * np.square(w[k]) for k in w}
