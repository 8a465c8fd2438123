"""tools/profile_saliency.py: figures present, positive, and both Hg modes agree."""

import math

import pytest

from tools import profile_saliency


def test_profile_small_resnet():
  res = profile_saliency.profile("resnet_cifar", batch_size=4, repeats=2,
                                 depth=8, width_multiplier=0.25)
  want = {"train_step", "gradient", "g_and_hg_reverse",
          "hg_forward_over_reverse", "g_then_hg_forward_over_reverse",
          "g_and_hg_reverse_fused", "synflow_reference_f64", "synflow_round",
          "synflow_score_by_name", "prune_overhead"}
  assert set(res["seconds"]) == want
  for k in want:
    assert len(res["seconds"][k]) == 2
    assert all(t > 0 and math.isfinite(t) for t in res["seconds"][k])
  assert res["ratio_to_train_step"]["train_step"] == pytest.approx(1.0)
  # Reverse-over-reverse and forward-over-reverse compute the same H g.
  assert res["hg_max_rel_diff"] < 1e-3
