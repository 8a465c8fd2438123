"""EOC theory vs independent Monte Carlo estimates and closed forms."""

import math

import numpy as np
import pytest

from sbp_tf import eoc

_Z = np.random.default_rng(0).standard_normal(1_000_000)


def _mc_mean(f, q):
  return float(np.mean(f(math.sqrt(q) * _Z)))


def _mc_fixed_point(phi, sw, sb, iters=200):
  q = 1.0
  for _ in range(iters):
    q = sb ** 2 + sw ** 2 * _mc_mean(lambda x: phi(x) ** 2, q)
  return q


def _elu(x):
  return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _delu(x):
  return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))


def test_relu_eoc_is_sqrt2_and_chi_is_half_sigma_w_squared():
  assert eoc.eoc_sigma_w("relu") == pytest.approx(math.sqrt(2), abs=1e-12)
  assert eoc.chi("relu", 1.7, 0.0) == pytest.approx(1.7 ** 2 / 2, rel=1e-12)
  # Variance map closed form V(q) = sb^2 + sw^2 q / 2 -> q* = sb^2/(1 - sw^2/2).
  assert eoc.fixed_point_q("relu", 1.0, 1.0) == pytest.approx(2.0)
  assert eoc.fixed_point_q("relu", 1.5, 0.1) == math.inf
  with pytest.raises(ValueError, match="only at sigma_b=0"):
    eoc.eoc_sigma_w("relu", 0.2)


@pytest.mark.parametrize("name,phi,dphi,sb,paper_sw", [
    ("tanh", np.tanh, lambda x: 1 - np.tanh(x) ** 2, 0.2, 1.2981),
    ("elu", _elu, _delu, 0.2, 1.22459),
])
def test_eoc_point_matches_monte_carlo(name, phi, dphi, sb, paper_sw):
  sw = eoc.eoc_sigma_w(name, sb)
  q = eoc.fixed_point_q(name, sw, sb)
  # q* solves q = V(q) with V estimated by Monte Carlo ...
  v_mc = sb ** 2 + sw ** 2 * _mc_mean(lambda x: phi(x) ** 2, q)
  assert v_mc == pytest.approx(q, rel=3e-3)
  # ... and the depth recursion run with Monte Carlo lands near it.
  assert _mc_fixed_point(phi, sw, sb, iters=30) == pytest.approx(q, rel=2e-2)
  chi_mc = sw ** 2 * _mc_mean(lambda x: dphi(x) ** 2, q)
  assert chi_mc == pytest.approx(1.0, abs=3e-3)
  # The authors' rounded value lies within 0.5% of the exact EOC point.
  assert sw == pytest.approx(paper_sw, rel=5e-3)
  assert eoc.phase(name, paper_sw, sb) == "eoc"


def test_user_callable_matches_builtin():
  sw = eoc.eoc_sigma_w(_elu, 0.2)
  assert sw == pytest.approx(eoc.eoc_sigma_w("elu", 0.2), rel=1e-6)
  assert eoc.chi(np.tanh, 1.1, 0.3) == pytest.approx(
      eoc.chi("tanh", 1.1, 0.3), rel=1e-6)


def test_ordered_paper_init_and_both_sides_of_curve():
  sw, sb = math.sqrt(0.1), 1.0
  assert eoc.phase("tanh", sw, sb) == "ordered"
  assert eoc.phase("elu", sw, sb) == "ordered"
  assert eoc.phase("relu", sw, sb) == "ordered"
  for name, sb in (("tanh", 0.2), ("elu", 0.2), ("selu", 0.3), ("tanh", 0.5)):
    sw = eoc.eoc_sigma_w(name, sb)
    assert eoc.phase(name, 0.9 * sw, sb) == "ordered"
    assert eoc.phase(name, 1.1 * sw, sb) == "chaotic"
    assert eoc.phase(name, sw, sb) == "eoc"


def test_variance_and_correlation_maps_vs_monte_carlo():
  sw, sb, q = 1.5, 0.3, 0.7
  assert eoc.variance_map("selu", q, sw, sb) == pytest.approx(
      sb ** 2 + sw ** 2 * _mc_mean(
          lambda x: eoc._BUILTINS["selu"][0](x) ** 2, q), rel=3e-3)
  c = 0.4
  z2 = np.random.default_rng(1).standard_normal(_Z.size)
  u1 = math.sqrt(q) * _Z
  u2 = math.sqrt(q) * (c * _Z + math.sqrt(1 - c * c) * z2)
  mc = (sb ** 2 + sw ** 2 * np.mean(np.tanh(u1) * np.tanh(u2))) / q
  assert eoc.correlation_map("tanh", c, sw, sb, q=q) == pytest.approx(mc,
                                                                      abs=3e-3)
  # c = 1 is a fixed point of the correlation map at q*.
  assert eoc.correlation_map("tanh", 1.0, sw, sb) == pytest.approx(1.0, 1e-9)


def test_eoc_curve_increases_and_matches_pointwise():
  sbs = np.array([0.05, 0.2, 0.5])
  curve = eoc.eoc_curve("tanh", sbs)
  assert curve.shape == (3,) and np.all(np.diff(curve) > 0)
  assert curve[1] == pytest.approx(eoc.eoc_sigma_w("tanh", 0.2))
  # sigma_b -> 0: tanh'(0) = 1 gives sigma_w -> 1.
  assert eoc.eoc_sigma_w("tanh", 0.0) == pytest.approx(1.0, abs=1e-3)


def test_bad_inputs_raise_with_fix():
  with pytest.raises(ValueError, match="Unknown activation 'sigmoidal'"):
    eoc.chi("sigmoidal", 1.0, 0.0)
  with pytest.raises(ValueError, match="sigma_w must be"):
    eoc.chi("tanh", -1.0, 0.0)
  with pytest.raises(TypeError, match="name or a callable"):
    eoc.chi(3, 1.0, 0.0)
  with pytest.raises(ValueError, match="No Edge of Chaos for gelu"):
    eoc.eoc_sigma_w("gelu", 0.2)
