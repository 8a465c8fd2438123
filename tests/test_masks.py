"""Masks: counting, npz round trip, apply/validate, reports."""

import json

import numpy as np
import pytest

from sbp_tf import pruning
from sbp_tf.compat import keras


def _masks():
  rng = np.random.default_rng(0)
  return pruning.Masks({"d1/kernel": rng.random((4, 5)) < 0.3,
                        "d2/kernel": np.zeros((5, 2)),
                        "d3/kernel": rng.random((2, 3)) < 0.7})


def _model():
  keras.utils.set_random_seed(0)
  return keras.Sequential([keras.layers.Dense(5, input_shape=(4,), name="d1"),
                           keras.layers.Dense(2, name="d2"),
                           keras.layers.Dense(3, name="d3")])


def test_counts():
  m = _masks()
  raw = {k: np.asarray(v) for k, v in m.items()}
  kept = sum(int(v.sum()) for v in raw.values())
  assert m.size() == 20 + 10 + 6 and m.kept() == kept
  assert m.density() == pytest.approx(kept / 36)
  assert m.sparsity() == pytest.approx(1 - kept / 36)
  assert m.layer_density()["d2/kernel"] == 0.0
  assert m.layer_density()["d1/kernel"] == pytest.approx(raw["d1/kernel"].mean())
  assert m.collapsed() == ["d2/kernel"]
  assert all(v.dtype == np.float32 for v in m.values())
  with pytest.raises(ValueError, match="other than 0 and 1"):
    pruning.Masks({"a": np.array([0.5])})


def test_save_load_round_trip(tmp_path):
  m = _masks()
  path = m.save(tmp_path / "masks")
  assert path.endswith(".npz")
  back = pruning.Masks.load(path)
  assert list(back) == list(m)
  for k in m:
    np.testing.assert_array_equal(back[k], m[k])


def test_apply_and_validate():
  model = _model()
  m = _masks()
  w = [v.copy() for v in model.get_weights()]
  m.apply(model)
  np.testing.assert_array_equal(model.get_layer("d1").kernel.numpy(),
                                w[0] * m["d1/kernel"])
  np.testing.assert_array_equal(model.get_layer("d1").bias.numpy(), w[1])
  bad = pruning.Masks({"d1/kernel": np.ones((5, 4))})
  with pytest.raises(ValueError, match=r"d1/kernel.*shape \(5, 4\)"):
    bad.apply(model)
  with pytest.raises(ValueError, match="'dx/kernel' is not a prunable"):
    pruning.Masks({"dx/kernel": np.ones((4, 5))}).validate(model)
  with pytest.raises(ValueError, match="No mask for"):
    pruning.Masks({"d1/kernel": np.ones((4, 5))}).validate(model, complete=True)


def test_report_json_markdown_png(tmp_path):
  m = _masks()
  rep = m.report(_model())
  data = json.loads(rep.to_json(str(tmp_path / "r.json")))
  assert data["total_kept"] == m.kept() and data["total_weights"] == 36
  assert data["collapsed"] == ["d2/kernel"]
  row = data["layers"][0]
  assert row["shape"] == [4, 5] and row["weights"] == 20
  assert row["density"] == pytest.approx(row["kept"] / 20)
  md = rep.to_markdown()
  assert md.count("\n") == 2 + 3 + 1 + 1  # + the whole-model row
  assert "| **whole model** | | 46 | 23 | 0.5000 |" in md  # + 10 biases
  assert f"| d1/kernel | 4x5 | 20 | {row['kept']} |" in md
  png = tmp_path / "r.png"
  rep.to_png(str(png))
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
