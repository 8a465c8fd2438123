"""The demo runs both arms (SNIP / standard, SBP-SR / Stable) on real data."""

import re

import pytest

from sbp_tf import demo


@pytest.mark.slow
def test_demo_runs_both_arms_and_shows_the_connectivity_gap(shared_data,
                                                            capsys):
  # Tiny scale (ResNet-32 x0.25, 256 images, 1 epoch). At 99.5% sparsity and
  # this width, with run_demo's pipeline, SBP at init disconnected the standard
  # ResNet and left the Stable ResNet connected for each of seeds 0-9; the
  # Stable ResNet had fewer fully pruned layers for 9 of them (seed 0: 7 vs 16).
  # Accuracies after 2 batches are not compared.
  sparsity = 0.995
  out = demo.run_demo("cifar10", str(shared_data), sparsity=sparsity,
                      epochs=1, train_examples=256, width_multiplier=0.25,
                      seed=0, verbose=0, test_examples=256)
  assert set(out) == {"snip", "sbp_sr", "sparsity"}
  snip, sbp_sr = out["snip"], out["sbp_sr"]
  assert not snip["stable"] and sbp_sr["stable"]
  for arm in (snip, sbp_sr):
    assert arm["size"] == snip["size"]  # same architecture apart from 1/sqrt(L)
    assert arm["kept"] == round((1 - sparsity) * arm["size"])
    assert arm["density"] == pytest.approx(1 - sparsity, abs=1e-5)
    assert arm["num_collapsed"] == len(arm["collapsed"])
    assert 0 <= arm["kept_in_shortcuts"] <= arm["kept"]
    assert 0.0 < arm["critical_sparsity"] < 1.0
    assert 0.0 <= arm["test_accuracy"] <= 1.0
    assert arm["test_loss"] == arm["test_loss"]  # finite, not NaN
  assert snip["connected"] is False and snip["reachable_fraction"] < 1.0
  assert sbp_sr["connected"] is True and sbp_sr["reachable_fraction"] == 1.0
  assert sbp_sr["num_collapsed"] < snip["num_collapsed"]

  printed = capsys.readouterr().out
  assert "SNIP (standard)" in printed and "SBP-SR (stable)" in printed
  assert re.search(r"^input->output connected at init +\| +no +\| +yes$",
                   printed, re.M)
  assert "paper's Table 1" in printed
