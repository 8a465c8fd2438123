"""The per-layer density plot of a pruning report (matplotlib, headless).

Density ``kept / weights`` of each layer as a bar on a **log** axis: at 99%
sparsity a 1%-dense layer and a 0.05%-dense one are decades apart, where on
a linear axis both look like zero. A collapsed layer (no weight kept) has no
place on a log axis; it gets a red ``x`` at the bottom and a red label.
Layers holding weights that are not pruned (unknown types) are grey.

Usage::

    fig = plots.density_figure(report, report.density)   # a Figure
    plots.density_png(report, "prune_report.png")        # atomic PNG
"""

import io
import math
from typing import Mapping, Optional, Sequence

from sbp_tf import files

__all__ = ["density_figure", "density_png"]


def _density(row: Mapping) -> float:
  return float(row.get("density", row["kept"] / max(row["weights"], 1)))


def _floor(densities: Sequence[float]) -> float:
  """Bottom of the axis: the decade below the smallest nonzero density
  (at most 0.1, so even a mildly pruned report shows two decades)."""
  smallest = min((d for d in densities if d > 0), default=1.0)
  return min(0.1, 10.0 ** math.floor(math.log10(smallest) - 1e-9))


def density_figure(rows: Sequence[Mapping], global_density: float,
                   title: Optional[str] = None):
  """A matplotlib Figure: density of each row (input side first), log axis.

  Args:
    rows: report rows (``layer``, ``weights``, ``kept``, optional
      ``density``, ``collapsed``, ``pruned``).
    global_density: drawn as a dashed line (``sum kept / sum weights``).
    title: axis title (default "density by layer").
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")  # headless; never opens a window
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  dens = [_density(r) for r in rows]
  floor = _floor(dens + [global_density])
  fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(rows) + 2.0), 3.4))
  colors = ["tab:blue" if r.get("pruned", True) else "tab:gray" for r in rows]
  ax.bar(range(len(rows)), dens, color=colors)
  ax.set_yscale("log")
  ax.set_ylim(floor, 1.5)
  if global_density > 0:
    ax.axhline(global_density, color="tab:red", ls="--", lw=1,
               label=f"global {global_density:.4g}")
  collapsed = [i for i, d in enumerate(dens) if d == 0]
  if collapsed:
    ax.plot(collapsed, [floor * 1.4] * len(collapsed), "x", color="red",
            ms=7, mew=2, ls="none", label=f"collapsed ({len(collapsed)}: "
            "0 kept)")
  ax.set_xticks(range(len(rows)))
  labels = ax.set_xticklabels([r["layer"].rsplit("/", 1)[0] for r in rows],
                              rotation=90, fontsize=6)
  for i in collapsed:
    labels[i].set_color("red")
  ax.set_ylabel("density (kept / weights), log")
  ax.set_title(title or "density by layer")
  # Outside the axes: inside it would hide bars or the collapsed marks.
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  return fig


def density_png(report, path: str, title: Optional[str] = None) -> str:
  """Writes :func:`density_figure` of a ``Report`` to ``path`` (atomically)."""
  fig = density_figure(list(report), report.density, title)
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
  plt.close(fig)
  files.write_bytes(path, buf.getvalue())
  return path
