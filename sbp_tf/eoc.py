"""Mean-field signal propagation and the Edge of Chaos (EOC).

For a deep network with weights ``W ~ N(0, sigma_w^2 / fan_in)`` and biases
``b ~ N(0, sigma_b^2)``, the pre-activation second moment follows the variance
map ``q_{l+1} = V(q_l) = sigma_b^2 + sigma_w^2 E[phi(sqrt(q_l) Z)^2]``
(``Z ~ N(0, 1)``) and converges to a fixed point ``q*``. The phase of
``(sigma_b, sigma_w)`` is decided by ``chi = sigma_w^2 E[phi'(sqrt(q*) Z)^2]``:
ordered (``chi < 1``, inputs collapse to one output), Edge of Chaos
(``chi = 1``) or chaotic (``chi > 1``). Hayou et al. (ICLR 2021) show that
pruning at initialization keeps FFNN/CNN trainable only on the EOC.

Gaussian expectations use Gauss-Hermite quadrature (probabilists' Hermite,
``numpy.polynomial.hermite_e.hermegauss``) for smooth activations; for
activations with a kink at 0 (relu, elu, selu and user callables) the same
Gaussian measure is integrated by Gauss-Legendre rules on each half line, which
stays exact to ~1e-12 where plain Gauss-Hermite loses digits at the kink.
No Monte Carlo is used here.

Usage::

    from sbp_tf import eoc
    sw = eoc.eoc_sigma_w("tanh", sigma_b=0.2)      # ~1.298
    eoc.chi("tanh", sw, 0.2)                       # ~1.0
    eoc.phase("tanh", 0.1 ** 0.5, 1.0)             # 'ordered'
"""

import functools
import math
from typing import Callable, Union

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

Activation = Union[str, Callable]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_SQRT2 = math.sqrt(2.0)
_erf = np.vectorize(math.erf, otypes=[float])


def _sigmoid(x):
  return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gauss_cdf(x):
  return 0.5 * (1.0 + _erf(x / _SQRT2))


def _gauss_pdf(x):
  return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _neg(x):
  return np.minimum(x, 0.0)


# name -> (phi, phi', kink at 0, positively homogeneous)
_BUILTINS = {
    "relu": (lambda x: np.maximum(x, 0.0),
             lambda x: (x > 0).astype(float), True, True),
    "linear": (lambda x: x, np.ones_like, False, True),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2, False, False),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(_neg(x))),
            lambda x: np.where(x > 0, 1.0, np.exp(_neg(x))), True, False),
    "selu": (lambda x: _SELU_SCALE * np.where(
        x > 0, x, _SELU_ALPHA * np.expm1(_neg(x))),
             lambda x: _SELU_SCALE * np.where(
                 x > 0, 1.0, _SELU_ALPHA * np.exp(_neg(x))), True, False),
    "gelu": (lambda x: x * _gauss_cdf(x),
             lambda x: _gauss_cdf(x) + x * _gauss_pdf(x), False, False),
    "swish": (lambda x: x * _sigmoid(x),
              lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x))),
              False, False),
    "softplus": (lambda x: np.logaddexp(0.0, x), _sigmoid, False, False),
}
_ALIASES = {"silu": "swish", "identity": "linear", None: "linear"}
ACTIVATIONS = tuple(sorted(_BUILTINS))


def _check_sigmas(sigma_w, sigma_b):
  if not (np.isfinite(sigma_w) and sigma_w > 0):
    raise ValueError(f"sigma_w must be a finite positive number, got {sigma_w!r}."
                     " Fix: pass the weight scale, e.g. sigma_w=1.0.")
  if not (np.isfinite(sigma_b) and sigma_b >= 0):
    raise ValueError(f"sigma_b must be a finite number >= 0, got {sigma_b!r}. "
                     "Fix: pass the bias standard deviation, e.g. sigma_b=0.0.")


class _Act:
  """An activation resolved for quadrature: phi, phi', quadrature rule."""

  def __init__(self, activation: Activation):
    if isinstance(activation, str) or activation is None:
      name = _ALIASES.get(activation, activation)
      name = _ALIASES.get(name.lower(), name.lower())
      if name not in _BUILTINS:
        raise ValueError(
            f"Unknown activation {activation!r}. Fix: use one of "
            f"{list(ACTIVATIONS)} or pass a NumPy-vectorized callable.")
      self.name = name
      self.phi, self.dphi, self.kink, self.homogeneous = _BUILTINS[name]
    elif callable(activation):
      self.name = getattr(activation, "__name__", "callable")
      fn = activation
      self.phi = lambda x: np.asarray(fn(x), dtype=float)
      # Central difference: exact enough (O(h^2) ~ 1e-10) and works for any
      # elementwise callable, including TF functions that return tensors.
      h = 1e-5
      self.dphi = lambda x: (self.phi(x + h) - self.phi(x - h)) / (2 * h)
      self.kink, self.homogeneous = True, False
    else:
      raise TypeError(f"activation must be a name or a callable, got "
                      f"{type(activation).__name__}. Fix: pass e.g. 'tanh'.")
    z, w = _rule(self.kink)
    self.z, self.w = z, w

  def mean(self, f, q):
    """E[f(sqrt(q) Z)] by quadrature."""
    return float(np.dot(self.w, f(math.sqrt(max(q, 0.0)) * self.z)))


@functools.lru_cache(maxsize=None)
def _rule(kink: bool, n: int = 200):
  """Nodes/weights of E[f(Z)], Z ~ N(0,1); split at 0 when f has a kink."""
  if not kink:
    z, w = hermegauss(n)
    return z, w / math.sqrt(2.0 * math.pi)
  # Gauss-Legendre on [0, 12] (mass beyond 12 is ~1e-33) mirrored to [-12, 0].
  t, v = leggauss(n // 2)
  half = 6.0 * (t + 1.0)
  wh = 6.0 * v * _gauss_pdf(half)
  return np.concatenate([-half[::-1], half]), np.concatenate([wh[::-1], wh])


def _resolve(activation) -> _Act:
  if isinstance(activation, _Act):
    return activation
  return _Act(activation)


def is_homogeneous(activation: Activation) -> bool:
  """True for positively homogeneous phi(a x) = a phi(x), a > 0 (relu, linear)."""
  return _resolve(activation).homogeneous


def variance_map(activation: Activation, q: float, sigma_w: float,
                 sigma_b: float) -> float:
  """One layer of the variance map.

  ``V(q) = sigma_b^2 + sigma_w^2 E[phi(sqrt(q) Z)^2]``, ``Z ~ N(0, 1)``.

  Example: ``variance_map('relu', 1.0, 2 ** 0.5, 0.0) == 1.0``.
  """
  act = _resolve(activation)
  return sigma_b ** 2 + sigma_w ** 2 * act.mean(lambda x: act.phi(x) ** 2, q)


def fixed_point_q(activation: Activation, sigma_w: float, sigma_b: float, *,
                  q0: float = 1.0, tol: float = 1e-12,
                  max_iter: int = 200) -> float:
  """The fixed point ``q* = V(q*)`` of the variance map reached from ``q0``.

  ``q* = sigma_b^2 + sigma_w^2 E[phi(sqrt(q*) Z)^2]``, found by iterating
  ``q <- V(q)`` from ``q0`` (the depth recursion itself). Positively homogeneous
  activations (relu, linear) have the closed form
  ``q* = sigma_b^2 / (1 - sigma_w^2 E[phi(Z)^2])``; it is ``inf`` when the
  variance diverges and ``q0`` when every q is fixed (relu at (0, sqrt 2)).

  Example: ``fixed_point_q('relu', 1.0, 1.0) == 2.0``.
  """
  _check_sigmas(sigma_w, sigma_b)
  act = _resolve(activation)
  if act.homogeneous:
    slope = sigma_w ** 2 * act.mean(lambda x: act.phi(x) ** 2, 1.0)
    if abs(slope - 1.0) < 1e-12 and sigma_b == 0:
      return float(q0)  # degenerate: V(q) = q for every q.
    if slope >= 1.0:
      return math.inf
    return sigma_b ** 2 / (1.0 - slope)
  # Iterate the depth recursion; V is increasing, so q_l moves monotonically
  # towards the fixed point. When V'(q*) is close to 1 that is slow, so after
  # a few steps the root of V(q) - q is bracketed and bisected instead.
  g = lambda x: variance_map(act, x, sigma_w, sigma_b) - x
  q = float(q0)
  for _ in range(64):
    q_next = q + g(q)
    if q_next > 1e12:
      return math.inf
    if abs(q_next - q) <= tol * max(1.0, q):
      return q_next
    q = q_next
  step = g(q)
  if step > 0:
    lo, hi = q, 2.0 * q + 1.0
    while g(hi) > 0:
      lo, hi = hi, 2.0 * hi
      if hi > 1e12:
        return math.inf
  else:
    lo, hi = 0.0, q
  for _ in range(max_iter):
    mid = 0.5 * (lo + hi)
    if g(mid) > 0:
      lo = mid
    else:
      hi = mid
    if hi - lo <= tol * max(1.0, hi):
      break
  return 0.5 * (lo + hi)


def chi(activation: Activation, sigma_w: float, sigma_b: float, *,
        q: float = None) -> float:
  """Slope of the correlation map at c = 1 (the EOC order parameter).

  ``chi = sigma_w^2 E[phi'(sqrt(q*) Z)^2]`` with ``q* = fixed_point_q(...)``
  unless ``q`` is given. For relu, ``chi = sigma_w^2 / 2`` for every q.

  Example: ``chi('relu', 2 ** 0.5, 0.0) == 1.0``.
  """
  _check_sigmas(sigma_w, sigma_b)
  act = _resolve(activation)
  if q is None:
    q = 1.0 if act.homogeneous else fixed_point_q(act, sigma_w, sigma_b)
  if not math.isfinite(q):
    raise ValueError(
        f"The variance diverges for ({act.name}, sigma_w={sigma_w}, "
        f"sigma_b={sigma_b}); chi is undefined. Fix: use a smaller sigma_w.")
  return sigma_w ** 2 * act.mean(lambda x: act.dphi(x) ** 2, q)


def correlation_map(activation: Activation, c: float, sigma_w: float,
                    sigma_b: float, *, q: float = None) -> float:
  """One layer of the correlation map between two inputs at variance q*.

  ``f(c) = (sigma_b^2 + sigma_w^2 E[phi(u1) phi(u2)]) / q*`` with
  ``u1 = sqrt(q*) Z1``, ``u2 = sqrt(q*) (c Z1 + sqrt(1 - c^2) Z2)``.

  Example: ``correlation_map('tanh', 1.0, 1.3, 0.2) ~= 1.0``.
  """
  _check_sigmas(sigma_w, sigma_b)
  if not -1.0 <= c <= 1.0:
    raise ValueError(f"c must be in [-1, 1], got {c}. Fix: pass a correlation.")
  act = _resolve(activation)
  if q is None:
    q = fixed_point_q(act, sigma_w, sigma_b)
  s = math.sqrt(q)
  z1, z2 = act.z[:, None], act.z[None, :]
  w2 = act.w[:, None] * act.w[None, :]
  u1 = s * z1
  u2 = s * (c * z1 + math.sqrt(max(1.0 - c * c, 0.0)) * z2)
  e = float(np.sum(w2 * act.phi(u1) * act.phi(u2)))
  return (sigma_b ** 2 + sigma_w ** 2 * e) / q


def eoc_sigma_w(activation: Activation, sigma_b: float = 0.0, *,
                tol: float = 1e-10) -> float:
  """The EOC weight scale: the sigma_w with ``chi(sigma_w, sigma_b) = 1``.

  Solved by bisection on ``chi(sigma_w) - 1`` (chi grows with sigma_w).
  Positively homogeneous activations have an EOC only at sigma_b = 0:
  ``sigma_w = 1 / sqrt(E[phi'(Z)^2])`` (sqrt 2 for relu); for sigma_b > 0
  their variance diverges there, so this raises.

  Example: ``eoc_sigma_w('relu') == 2 ** 0.5``.
  """
  _check_sigmas(1.0, sigma_b)
  act = _resolve(activation)
  if act.homogeneous:
    if sigma_b > 0:
      raise ValueError(
          f"{act.name} has its Edge of Chaos only at sigma_b=0 (sigma_w = "
          f"{1 / math.sqrt(act.mean(lambda x: act.dphi(x) ** 2, 1.0)):.6g}); "
          f"with sigma_b={sigma_b} the variance diverges there. Fix: pass "
          "sigma_b=0.")
    return 1.0 / math.sqrt(act.mean(lambda x: act.dphi(x) ** 2, 1.0))

  def f(sw):
    q = fixed_point_q(act, sw, sigma_b)
    # A diverging variance is the far chaotic side (chi -> inf).
    return 1.0 if not math.isfinite(q) else chi(act, sw, sigma_b, q=q) - 1.0

  # chi need not be monotone in sigma_w (gelu, swish): scan a grid for the
  # first sign change of chi - 1, then bisect inside it.
  grid = np.concatenate([np.linspace(0.05, 4.0, 80), np.linspace(4.1, 20, 40)])
  lo = hi = None
  prev = grid[0]
  if f(prev) > 0:
    raise ValueError(f"chi > 1 already at sigma_w={prev} for {act.name}, "
                     f"sigma_b={sigma_b}. Fix: use a smaller sigma_b.")
  for sw in grid[1:]:
    if f(sw) > 0:
      lo, hi = prev, sw
      break
    prev = sw
  if lo is None:
    raise ValueError(f"No Edge of Chaos found for {act.name} with sigma_b="
                     f"{sigma_b} (chi < 1 for sigma_w <= 20). Fix: use a "
                     "smaller sigma_b or another activation.")
  while hi - lo > tol * hi:
    mid = 0.5 * (lo + hi)
    if f(mid) < 0:
      lo = mid
    else:
      hi = mid
  sw = 0.5 * (lo + hi)
  if abs(f(sw)) > 1e-4:
    # q* jumps between two branches of fixed points (gelu, swish): chi skips 1.
    raise ValueError(
        f"No Edge of Chaos for {act.name} at sigma_b={sigma_b}: the fixed point "
        f"q* jumps at sigma_w={sw:.6g} and chi jumps over 1 (from "
        f"{f(lo) + 1:.4g} to {f(hi) + 1:.4g}). Fix: pick another sigma_b "
        "(see eoc_curve) or another activation.")
  return sw


def eoc_curve(activation: Activation, sigma_bs) -> np.ndarray:
  """EOC sigma_w for each sigma_b: ``{(sigma_b, sigma_w): chi = 1}``.

  Example: ``eoc_curve('tanh', [0.0, 0.2])`` ~ ``[1.0, 1.298]``.
  """
  act = _resolve(activation)
  sbs = np.asarray(sigma_bs, dtype=float)
  flat = [eoc_sigma_w(act, float(sb)) for sb in sbs.ravel()]
  return np.asarray(flat, dtype=float).reshape(sbs.shape)


def phase(activation: Activation, sigma_w: float, sigma_b: float, *,
          rtol: float = 1e-2) -> str:
  """'ordered' (chi < 1), 'eoc' (|chi - 1| <= rtol) or 'chaotic' (chi > 1).

  The default tolerance accepts the rounded EOC points found in the
  literature, e.g. tanh (0.2, 1.2981) where chi = 0.9967 (exact: 1.30415).

  Example: ``phase('tanh', 0.1 ** 0.5, 1.0) == 'ordered'``.
  """
  c = chi(activation, sigma_w, sigma_b)
  if abs(c - 1.0) <= rtol:
    return "eoc"
  return "ordered" if c < 1.0 else "chaotic"


__all__ = ["ACTIVATIONS", "chi", "correlation_map", "eoc_curve", "eoc_sigma_w",
           "fixed_point_q", "is_homogeneous", "phase", "variance_map"]
