"""The whole model's sparsity next to the targets', and a loud warning when a
custom layer's weights are left unpruned.

``Masks.sparsity()`` is the sparsity of the pruned targets; a layer of a type
no prunable-target entry covers keeps all its weights, so the model as a
whole is far less sparse. The report states both, and ``prune`` warns once,
naming the layers and ``register_target``.
"""

import json
import warnings

import numpy as np
import pytest

from sbp_tf import pruning
from sbp_tf.compat import keras
from sbp_tf.pruning import targets as targets_lib
from sbp_tf.training import report as report_lib


class Table(keras.layers.Layer):
  """The user's weight-owning layer: ``x @ T`` with its own ``add_weight``."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units

  def build(self, shape):
    self.table = self.add_weight(name="table", shape=(shape[-1], self.units))

  def call(self, x):
    return x @ self.table


def model():
  keras.utils.set_random_seed(0)
  x = keras.Input((8,))
  h = Table(64, name="tab")(x)                       # 512 weights
  h = keras.layers.Dense(6, name="d1")(h)            # 384 + 6
  return keras.Model(x, keras.layers.Dense(3, name="d2")(h))  # 18 + 3


def _prune(m):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    res = pruning.prune(m, "magnitude", 0.9)
  return res, [str(w.message) for w in caught
               if "NOT pruned" in str(w.message)]


def test_report_states_model_sparsity_and_prune_warns_about_custom_weights(
    tmp_path):
  m = model()
  res, warned = _prune(m)
  targets, whole = 384 + 18, 512 + 384 + 6 + 18 + 3
  pruned = targets - round(0.1 * targets)
  assert res.masks.sparsity() == pytest.approx(pruned / targets)  # ~0.9
  assert res.masks.model_sparsity(m) == pytest.approx(pruned / whole)
  assert res.masks.model_sparsity(m) < 0.4
  rep = res.report
  assert rep.model_weights == whole and rep.not_pruned() == ["tab"]
  assert rep.model_sparsity == pytest.approx(pruned / whole)
  md = rep.to_markdown()
  kept_whole = whole - pruned
  assert (f"| **whole model** | | {whole} | {kept_whole} | "
          f"{kept_whole / whole:.4f} |") in md, md
  summary = json.loads(rep.to_json())
  assert summary["model_weights"] == whole
  assert summary["model_sparsity"] == pytest.approx(pruned / whole)
  # The workdir writes the report prune returned: both sparsities.
  out = report_lib.write_reports(res.masks, tmp_path, report=rep)
  saved = json.loads((tmp_path / "prune_report.json").read_text())
  assert saved["model_sparsity"] == out["model_sparsity"] == pytest.approx(
      pruned / whole)
  # One loud warning, naming the layer, both sparsities and the fix.
  assert len(warned) == 1, warned
  assert "tab (Table, 512 weights)" in warned[0]
  assert f"sparsity {pruned / targets:.4f} is that of the pruned" in warned[0]
  assert f"whole model's only {pruned / whole:.4f}" in warned[0]
  assert "Fix: declare their prunable weights with sbp_tf.pruning." \
         "register_target(" in warned[0]


def test_registered_custom_layer_is_pruned_and_prune_is_quiet():
  pruning.register_target(Table, ("table",))
  try:
    m = model()
    res, warned = _prune(m)
  finally:
    targets_lib._USER.clear()  # pylint: disable=protected-access
  assert warned == [] and res.report.not_pruned() == []
  assert "tab/table" in res.masks
  n = 512 + 384 + 18
  pruned = n - round(0.1 * n)
  assert res.report.model_sparsity == pytest.approx(pruned / (n + 9))
  assert np.count_nonzero(m.get_layer("tab").table.numpy()) < 512


def test_model_row_absent_without_a_model():
  masks = pruning.Masks({"d/kernel": np.array([[1.0, 0.0], [0.0, 0.0]])})
  rep = masks.report()
  assert rep.model_weights is None and rep.model_sparsity is None
  assert "whole model" not in rep.to_markdown()
  assert rep.sparsity == pytest.approx(0.75)


def test_keras3_report_states_model_sparsity():
  import keras as k3  # pylint: disable=g-import-not-at-top
  from sbp_tf import keras3  # pylint: disable=g-import-not-at-top
  k3.utils.set_random_seed(0)
  x = k3.Input((8,))
  h = k3.layers.Dense(16, name="d1")(x)
  h = k3.layers.BatchNormalization(name="bn")(h)
  m = k3.Model(x, k3.layers.Dense(3, name="d2")(h))
  res = keras3.prune(m, "magnitude", 0.9)
  targets = 8 * 16 + 16 * 3
  whole = targets + 16 + 3 + 2 * 16  # biases, BN gamma/beta
  pruned = targets - round(0.1 * targets)
  assert res.report.model_weights == whole
  assert res.report.model_sparsity == pytest.approx(pruned / whole)
  assert "| **whole model** |" in res.report.to_markdown()
