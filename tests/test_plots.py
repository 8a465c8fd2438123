"""The per-layer density plot is readable at 99% sparsity."""

import numpy as np

from sbp_tf import plots
from sbp_tf.pruning import Masks


def _masks_at_99():
  """Three layers: 1% dense, 0.05% dense, and one collapsed (0 kept)."""
  a, b, c = np.zeros(10000), np.zeros(20000), np.zeros(5000)
  a[:100] = 1  # 1%
  b[:10] = 1   # 0.05%
  return Masks({"a/kernel": a.reshape(100, 100), "b/kernel": b.reshape(100, 200),
                "c/kernel": c.reshape(50, 100)})


def _height(ax, x, y):
  """Where data point (x, y) lies on the axis, 0 (bottom) to 1 (top)."""
  return ax.transAxes.inverted().transform(ax.transData.transform((x, y)))[1]


def test_log_axis_separates_sparse_layers_and_marks_collapsed_ones(tmp_path):
  rep = _masks_at_99().report()
  assert 0.99 < 1 - rep.density < 0.998
  fig = plots.density_figure(rep, rep.density)
  ax = fig.axes[0]
  assert ax.get_yscale() == "log"
  # On a linear 0-1 axis the 1% layer would sit at 0.01 of the height, the
  # 0.05% one at 0.0005: both look like the collapsed layer. Log: decades.
  one, tiny = _height(ax, 0, 0.01), _height(ax, 1, 0.0005)
  assert one - tiny > 0.2 and tiny > 0.05
  marks = [l for l in ax.lines if "collapsed" in (l.get_label() or "")]
  assert len(marks) == 1 and list(marks[0].get_xdata()) == [2]
  labels = ax.get_xticklabels()
  assert labels[2].get_text() == "c" and labels[2].get_color() == "red"
  assert labels[0].get_color() != "red"
  path = tmp_path / "r.png"
  rep.to_png(str(path))
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not list(tmp_path.glob("*.tmp"))  # written atomically
