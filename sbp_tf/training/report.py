"""Per-layer sparsity report of a set of masks: JSON, markdown table, PNG.

For each target key: ``density = kept / size`` with ``kept = sum(mask)``;
the total row is ``sum(kept) / sum(size)`` over all prunable weights.

Usage::

    rows = layer_rows(masks)               # list of dicts, one per layer
    write_reports(masks, "/tmp/run", "prune_report")
"""

import pathlib
from typing import Dict, List, Mapping

import numpy as np

from sbp_tf.training import workdir as wd_lib


def layer_rows(masks: Mapping[str, np.ndarray]) -> List[Dict]:
  """One row per mask: key, shape, size, kept, density (=kept/size)."""
  rows = []
  for key, m in masks.items():
    m = np.asarray(m)
    kept = int(np.count_nonzero(m))
    rows.append(dict(key=key, shape=list(m.shape), size=int(m.size), kept=kept,
                     density=kept / max(m.size, 1), collapsed=kept == 0))
  return rows


def to_markdown(rows: List[Dict]) -> str:
  lines = ["| layer | shape | weights | kept | density |",
           "|---|---|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['key']} | {'x'.join(map(str, r['shape']))} | "
                 f"{r['size']} | {r['kept']} | {r['density']:.4f} |")
  size = sum(r["size"] for r in rows)
  kept = sum(r["kept"] for r in rows)
  lines.append(f"| **total** | | {size} | {kept} | {kept / max(size, 1):.4f} |")
  return "\n".join(lines) + "\n"


def write_reports(masks, directory, stem="prune_report") -> Dict:
  """Writes ``<stem>.json``, ``.md`` and ``.png``; returns the totals."""
  directory = pathlib.Path(directory)
  rows = layer_rows(masks)
  size = sum(r["size"] for r in rows)
  kept = sum(r["kept"] for r in rows)
  summary = dict(layers=rows, total_size=size, total_kept=kept,
                 density=kept / max(size, 1),
                 collapsed_layers=sum(r["collapsed"] for r in rows))
  wd_lib.write_json(directory / f"{stem}.json", summary)
  wd_lib.write_text(directory / f"{stem}.md", to_markdown(rows))
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
    fig, ax = plt.subplots(figsize=(max(4, 0.25 * len(rows) + 2), 3))
    ax.bar(range(len(rows)), [r["density"] for r in rows])
    ax.set_xlabel("layer (input side first)")
    ax.set_ylabel("density (kept fraction)")
    ax.set_ylim(0, 1)
    ax.set_title(f"per-layer density, total {summary['density']:.4f}")
    fig.tight_layout()
    fig.savefig(directory / f"{stem}.png", dpi=80)
    plt.close(fig)
  except Exception as e:  # pylint: disable=broad-except
    # The plot is a convenience; a headless box without fonts must not fail.
    print(f"sbp_tf: could not draw {stem}.png: {e}")
  return summary
