"""Aggregation, markdown tables, JSON and plots of a reproduction grid.

A table cell is ``mean +- std`` over the seeds that finished (sample std,
``ddof=1``; 0 with one seed), in percent for accuracies, with the paper's
number in the next column where ``tools/paper_numbers.py`` records one.
Tables 1, 2 and 9 add, per group and column, Spearman's rank correlation of
our means with the paper's and Welch's t-test of each method against SNIP
(:func:`column_stats`).

Usage::

    from tools import reproduce_report as rr
    cells = rr.aggregate(spec, records)          # per (row, col) statistics
    rr.write(spec, records, header, "docs/results")   # .md, .json, .png
    rr.column_stats(spec, cells)  # Table 1/2/9: rank corr., Welch vs SNIP
"""

import json
import math
import os
import pathlib
import platform
from typing import Any, Dict, List, Optional

import numpy as np

from sbp_tf import files
from sbp_tf import markdown as md_lib
from tools import paper_numbers
from tools import reproduce_stats


def machine() -> str:
  """'2-core CPU (<model name>)' of this machine, for table headers."""
  model = platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          model = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return f"{os.cpu_count()}-core CPU ({model}), shared with other jobs, no GPU"


def tf_version() -> str:
  try:
    from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
    import tf_keras  # pylint: disable=g-import-not-at-top
    return f"TensorFlow {tf.__version__}, tf_keras {tf_keras.__version__}"
  except Exception as e:  # pylint: disable=broad-except
    return f"unknown ({type(e).__name__})"


def mean_std(values) -> Dict[str, float]:
  """``{'mean', 'std', 'n'}``: sample std (ddof=1), 0 for a single value."""
  v = np.asarray([x for x in values if x is not None], dtype=np.float64)
  if v.size == 0:
    return dict(mean=None, std=None, n=0)
  std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
  return dict(mean=float(np.mean(v)), std=std, n=int(v.size))


def aggregate(spec, records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """One dict per (row, col): mean/std/n of the finished seeds + paper value.

  Training cells hold test accuracy (a fraction; tables print percent).
  Collapse rows hold the critical sparsity and, per target sparsity, the
  mean number of fully pruned layers and the fraction of seeds whose masked
  network stays connected.
  """
  out = []
  for row in spec.rows:
    for col in spec.cols:
      mine = [r for r in records if r["row"] == row and r["status"] == "done"
              and (r["col"] == col or r["col"] == "all")]
      errors = [r for r in records if r["row"] == row and r["col"] in (col, "all")
                and r["status"] == "error"]
      entry = dict(row=row, col=col, paper=paper_numbers.lookup(
          spec.name, row, col), errors=len(errors))
      if spec.name == "collapse":
        if col == "critical sparsity":
          entry.update(mean_std([r["metrics"].get("critical_sparsity")
                                 for r in mine]))
          brackets = [r["metrics"].get("critical_bracket") for r in mine]
          if brackets and all(brackets):
            entry["bracket"] = [min(b[0] for b in brackets),
                                max(b[1] for b in brackets)]
        else:
          per = [r["metrics"]["targets"].get(col) for r in mine]
          per = [p for p in per if p]
          entry.update(mean_std([p["collapsed_layers"] for p in per]))
          entry["connected"] = (sum(bool(p["connected"]) for p in per) /
                                len(per) if per else None)
          entry["achieved_sparsity"] = mean_std(
              [p.get("sparsity") for p in per])["mean"]
      else:
        entry.update(mean_std([r["metrics"].get(spec.metric) for r in mine]))
        entry["values"] = [r["metrics"].get(spec.metric) for r in mine]
        best = [r["metrics"].get("best_test_accuracy") for r in mine]
        if any(b is not None for b in best):
          entry["best"] = mean_std(best)
          entry["best_values"] = best
        init = [r["metrics"].get("at_init") for r in mine]
        init = [d for d in init if d]
        if init:
          entry["at_init"] = dict(
              fully_pruned_layers=mean_std(
                  [d["fully_pruned_layers"] for d in init]),
              connected=sum(bool(d["connected"]) for d in init) / len(init),
              reachable_fraction=mean_std(
                  [d["reachable_fraction"] for d in init]),
              kept_weights=mean_std([d["kept_weights"] for d in init]),
              total_weights=init[0]["total_weights"])
      out.append(entry)
  return out


def _pm(ms, scale=100.0, digits=2) -> str:
  if not ms or not ms["n"]:
    return "-"
  txt = f"{scale * ms['mean']:.{digits}f}"
  return txt + (f" ± {scale * ms['std']:.{digits}f}" if ms["n"] > 1 else "")


def comparisons(spec, cells) -> List[Dict[str, Any]]:
  """SBP-SR vs SNIP per (group, column) for the extreme study.

  Rows are ``'<group> / SNIP (standard)'`` and ``'<group> / SBP-SR
  (stable)'``; each comparison holds Welch's test of ``SBP-SR - SNIP`` on
  the final and on the best-epoch test accuracy (see tools/reproduce_stats).
  """
  by = {(c["row"], c["col"]): c for c in cells}
  groups = []
  for row in spec.rows:
    g = row.rsplit(" / ", 1)[0]
    if g not in groups:
      groups.append(g)
  out = []
  for g in groups:
    snip, sbp = f"{g} / SNIP (standard)", f"{g} / SBP-SR (stable)"
    for col in spec.cols:
      a, b = by.get((sbp, col)), by.get((snip, col))
      if not a or not b:
        continue
      out.append(dict(
          group=g, col=col,
          final=reproduce_stats.welch(a.get("values", []),
                                      b.get("values", [])),
          best=reproduce_stats.welch(a.get("best_values", []),
                                     b.get("best_values", []))))
  return out


def _verdict(w) -> str:
  if w is None:
    return "fewer than 2 seeds"
  pts = 100 * w["diff"]
  sig = w["p"] < 0.05
  if not sig:
    return f"no significant difference ({pts:+.2f} points, p = {w['p']:.2g})"
  who = "SBP-SR above SNIP" if pts > 0 else "SNIP above SBP-SR"
  return f"{who} by {abs(pts):.2f} points (t = {w['t']:.2f}, p = {w['p']:.2g})"


def _extreme_lines(spec, cells) -> List[str]:
  lines = ["Test accuracy in %, mean ± sample std over seeds. 'final' = after "
           "the last epoch; 'best' = the best test accuracy over epochs (what "
           "the authors' code reports). 'paper' = Table 1 (ResNet32; the paper "
           "does not say whether batch norm was used). At init (before any "
           "training): fully pruned layers (mean), connected = share of seeds "
           "whose masked network links input to output, reachable = mean "
           "fraction of outputs reached, kept = kept / prunable weights.", ""]
  by = {(c["row"], c["col"]): c for c in cells}
  rows = []
  for row in spec.rows:
    for col in spec.cols:
      e = by[(row, col)]
      ai = e.get("at_init") or {}
      kept = ai.get("kept_weights")
      rows.append([
          row, col, _pm(e if e["n"] else None), _pm(e.get("best")),
          str(e["paper"] or "n/a"), _pm(ai.get("fully_pruned_layers"), 1, 1),
          f"{ai['connected']:.0%}" if ai else "-",
          _pm(ai.get("reachable_fraction"), 1, 3) if ai else "-",
          f"{kept['mean']:,.0f} / {ai['total_weights']:,}" if kept
          and kept["n"] else "-", str(e["n"])])
  lines += md_lib.table(
      ["row", "sparsity", "final", "best", "paper", "fully pruned layers",
       "connected", "reachable", "kept", "n"], rows,
      align="l" + "r" * 9).splitlines()
  lines += ["", "SBP-SR minus SNIP, Welch's t-test (two-sided, "
            "tools/reproduce_stats.py):", ""]
  lines += md_lib.table(
      ["batch norm", "sparsity", "final accuracy", "best-epoch accuracy"],
      [[c["group"], c["col"], _verdict(c["final"]), _verdict(c["best"])]
       for c in comparisons(spec, cells)], align="lrll").splitlines()
  return lines


# Experiments whose tables get the per-column rank correlation with the
# paper and the Welch tests against SNIP (rows '<group> / <method>').
COLUMN_STATS_EXPERIMENTS = ("table1", "table2", "table9")


def _group_method(row: str):
  """'ResNet32 / SNIP (standard)' -> ('ResNet32', 'SNIP (standard)')."""
  group, _, method = row.partition(" / ")
  return group, method


def _rank_entry(rows, ours, paper) -> Dict[str, Any]:
  """Spearman's rho of ``ours`` vs ``paper`` over the pairs with both."""
  used = [(r, o, p) for r, o, p in zip(rows, ours, paper)
          if o is not None and p is not None]
  entry = dict(rows_compared=[r for r, _, _ in used],
               rows_left_out=[r for r, o, p in zip(rows, ours, paper)
                              if o is None or p is None],
               n_rows=len(used),
               spearman=reproduce_stats.spearman([o for _, o, _ in used],
                                                 [p for _, _, p in used]))
  if len(used) == 2:  # rho needs 3; still say whether the 2 are in order
    d = (used[0][1] - used[1][1]) * (used[0][2] - used[1][2])
    entry["order_of_two"] = "same" if d > 0 else ("opposite" if d < 0
                                                  else "tied")
  return entry


def column_stats(spec, cells) -> List[Dict[str, Any]]:
  """Per (group, column): rank correlation with the paper, Welch vs SNIP.

  A group is the rows sharing the label before ' / ' (e.g. 'ResNet32', or
  'ReLU' / 'tanh' in Table 9). ``spearman`` is Spearman's rho between our
  cell means and the paper's means (``paper_numbers.mean_of``) over the
  group's rows that have both (rows without a paper number, e.g. our
  ablation, are left out; ``n_rows`` counts the rest). ``welch`` holds, for
  every other row, Welch's t-test of ``row - SNIP`` on the per-seed final
  test accuracies (fractions; None with fewer than 2 seeds on either side),
  SNIP being the group's row whose method starts with 'SNIP' (``snip_row``
  None, ``welch`` empty where the group has none). One more entry per
  group, ``col == 'all'``, pools every (row, column) cell of the group into
  one rho (no Welch tests).
  """
  by = {(c["row"], c["col"]): c for c in cells}
  groups = []
  for row in spec.rows:
    if _group_method(row)[0] not in groups:
      groups.append(_group_method(row)[0])
  out = []
  for g in groups:
    members = [r for r in spec.rows if _group_method(r)[0] == g]
    snip = next((r for r in members
                 if _group_method(r)[1].startswith("SNIP")), None)
    for col in spec.cols:
      entry = dict(group=g, col=col, snip_row=snip, **_rank_entry(
          members, [by[(r, col)]["mean"] for r in members],
          [paper_numbers.mean_of(by[(r, col)]["paper"]) for r in members]))
      entry["welch"] = [
          dict(row=r, test=reproduce_stats.welch(
              by[(r, col)].get("values") or [],
              by[(snip, col)].get("values") or []))
          for r in members if snip is not None and r != snip]
      out.append(entry)
    pooled = [(f"{r} @ {c}", by[(r, c)]) for r in members for c in spec.cols]
    out.append(dict(group=g, col="all", snip_row=snip, welch=[], **_rank_entry(
        [k for k, _ in pooled], [e["mean"] for _, e in pooled],
        [paper_numbers.mean_of(e["paper"]) for _, e in pooled])))
  return out


def _rho_text(entry) -> str:
  if entry["spearman"] is not None:
    return f"{entry['spearman']:+.2f}"
  if entry["n_rows"] >= 3:
    return "n/a (constant on one side)"
  two = {"same": "; the 2 compared are in the paper's order",
         "opposite": "; the 2 compared are in the reverse of the paper's "
                     "order",
         "tied": "; the 2 compared tie on one side"}
  two = two.get(entry.get("order_of_two"))
  return f"n/a (fewer than 3 rows{two or ''})"


def _welch_text(w) -> str:
  """'+3.10 (t = 2.41, p = 0.031) *': row - SNIP in points; * = p < 0.05."""
  if w is None:
    return "fewer than 2 seeds"
  return (f"{100 * w['diff']:+.2f} (t = {w['t']:.2f}, p = {w['p']:.2g})" +
          (" *" if w["p"] < 0.05 else ""))


def _column_stats_lines(spec, cells) -> List[str]:
  """Markdown below the main table: rank correlations, Welch vs SNIP."""
  stats = column_stats(spec, cells)
  lines = ["", "Rank correlation with the paper: Spearman's rho between our "
           "means and the paper's over the rows of the group that have both "
           "(rows without a paper number, e.g. the ablation, are left out; "
           "tools/reproduce_stats.py). 'all' pools every (row, sparsity) "
           "cell of the group ('rows compared' then counts cells), so it "
           "mixes the order of the methods with the drop of accuracy with "
           "sparsity.", ""]
  lines += md_lib.table(
      ["group", "sparsity", "rows compared", "rank correlation with the "
       "paper"],
      [[e["group"], e["col"], f"{e['n_rows']} of "
        f"{e['n_rows'] + len(e['rows_left_out'])}", _rho_text(e)]
       for e in stats], align="llrr").splitlines()
  welch = {(e["group"], e["col"]): e for e in stats if e["col"] != "all"}
  rows = []
  for row in spec.rows:
    g = _group_method(row)[0]
    tests = [[w["test"] for w in welch[(g, c)]["welch"] if w["row"] == row]
             for c in spec.cols]
    if tests and all(tests):  # not SNIP itself; the group has one
      rows.append([row] + [_welch_text(t[0]) for t in tests])
  lines += ["", "Welch vs SNIP: each method minus the SNIP row of its group, "
            "Welch's t-test (two-sided) on the per-seed final test accuracy; "
            "difference in points of accuracy, t, p; * = p < 0.05.", ""]
  if rows:
    lines += md_lib.table(["row"] + list(spec.cols), rows,
                          align="l" + "r" * len(spec.cols)).splitlines()
  else:
    lines.append("(no group has a SNIP row and another row)")
  return lines


def _fmt_acc(e) -> str:
  if not e["n"]:
    return "error" if e.get("errors") else "-"
  if e["n"] == 1:
    return f"{100 * e['mean']:.2f} (n=1)"
  return f"{100 * e['mean']:.2f} ± {100 * e['std']:.2f} (n={e['n']})"


def _fmt_collapse(e) -> str:
  if not e["n"]:
    return "error" if e.get("errors") else "-"
  if e["col"] == "critical sparsity":
    if e.get("bracket"):  # iterative pruning: bracketed by the row's cells
      lo, hi = e["bracket"]
      return (f"≥ {100 * lo:g}% (iterative)" if hi >= 1.0 else
              f"{100 * lo:g}-{100 * hi:g}% (iterative)")
    txt = f"{100 * e['mean']:.2f}%"
    return txt + (f" ± {100 * e['std']:.2f}" if e["n"] > 1 else "")
  conn = e.get("connected")
  c = "yes" if conn == 1 else ("no" if conn == 0 else f"{conn:.0%}")
  return f"{e['mean']:g} / {c}"


def markdown(spec, cells, header: Dict[str, Any]) -> str:
  """The table as markdown, with command, machine and shortcuts on top."""
  lines = [f"# {spec.title}", ""]
  lines.append(f"- Scale: `{spec.scale}`; seeds: "
               f"{', '.join(map(str, spec.seeds))}")
  lines.append(f"- Command: `{header['command']}`")
  lines.append(f"- Machine: {header['machine']}; {header['tf_version']}")
  lines.append(f"- Wall time: {header['wall_time']}")
  lines.append(f"- Cells finished: {header['done']} of {header['total']}"
               + (f" ({header['errors']} failed)" if header["errors"] else "")
               + ("" if header["done"] == header["total"] else
                  " (PARTIAL table: rerun the command to fill the rest)"))
  lines.append("- Shortcuts at this scale:")
  lines += [f"  - {s}" for s in spec.shortcuts]
  lines.append("")
  by = {(c["row"], c["col"]): c for c in cells}
  if spec.name == "collapse":
    lines.append("Each cell: fully pruned layers / network still connected "
                 "(input to output) at that global sparsity; critical "
                 "sparsity = the largest sparsity that prunes no layer "
                 "entirely, from the scores (no training); for iterative "
                 "pruning (SynFlow) it is bracketed by the row's own cells, "
                 "since each target is pruned with its own schedule.")
    lines.append("")
    lines += md_lib.table(
        ["architecture / method"] + list(spec.cols),
        [[row] + [_fmt_collapse(by[(row, c)]) for c in spec.cols]
         for row in spec.rows],
        align="l" + "r" * len(spec.cols)).splitlines()
  elif spec.name == "extreme":
    lines += _extreme_lines(spec, cells)
  else:
    lines.append("Test accuracy in %, mean ± sample std over seeds (n = "
                 "finished seeds); 'paper' = the published number where we "
                 "record one (n/a otherwise).")
    lines.append("")
    head = [""] + [f"{c} {w}" for c in spec.cols for w in ("ours", "paper")]
    rows = [[row] + [v for c in spec.cols for v in (
        _fmt_acc(by[(row, c)]), str(by[(row, c)]["paper"])
        if by[(row, c)]["paper"] is not None else "n/a")]
            for row in spec.rows]
    lines += md_lib.table(head, rows, align="l" + "r" * (2 * len(spec.cols))
                          ).splitlines()
    if spec.name in COLUMN_STATS_EXPERIMENTS:
      lines += _column_stats_lines(spec, cells)
  if header.get("notes"):
    lines.append("")
    lines += header["notes"]
  return "\n".join(lines) + "\n"


def plot(spec, cells, records, path) -> Optional[str]:
  """Accuracy (or collapse) vs column per row; per-layer density per arch."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  path = pathlib.Path(path)
  by = {(c["row"], c["col"]): c for c in cells}
  if spec.name == "collapse":
    return _plot_density(spec, records, path, plt)
  fig, ax = plt.subplots(figsize=(7, 4))
  x = np.arange(len(spec.cols))
  for i, row in enumerate(spec.rows):
    m = [by[(row, c)]["mean"] for c in spec.cols]
    s = [by[(row, c)]["std"] for c in spec.cols]
    ok = [j for j in range(len(m)) if m[j] is not None]
    if ok:
      line = ax.errorbar(x[ok], [100 * m[j] for j in ok],
                         yerr=[100 * s[j] for j in ok], marker="o",
                         capsize=3, label=row)
      color = line[0].get_color()
    else:
      color = None
    pp = [(j, by[(row, c)]["paper"]) for j, c in enumerate(spec.cols)]
    pp = [(j, paper_numbers.mean_of(v)) for j, v in pp
          if paper_numbers.mean_of(v) is not None]
    if pp:
      ax.plot([j for j, _ in pp], [v for _, v in pp], linestyle="none",
              marker="*", markersize=11, markerfacecolor="none",
              color=color, label=f"{row} (paper)")
  ax.set_xticks(x)
  ax.set_xticklabels(spec.cols)
  ax.set_xlabel(spec.col_axis)
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(f"{spec.name} ({spec.scale} scale)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return str(path)


def _plot_density(spec, records, path, plt):
  """One PNG per architecture: per-layer density by method at each target."""
  done = [r for r in records if r["status"] == "done"
          and r["metrics"].get("layer_density")]
  archs = []
  for r in done:
    a = r["row"].rsplit(" / ", 1)[0]
    if a not in archs:
      archs.append(a)
  written = []
  for arch in archs:
    mine = [r for r in done if r["row"].startswith(arch + " / ")
            and r["seed"] == min(x["seed"] for x in done)]
    targets = list(mine[0]["metrics"]["layer_density"])
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3),
                             sharey=True, squeeze=False)
    for ax, t in zip(axes[0], targets):
      for r in mine:
        dens = r["metrics"]["layer_density"].get(t)
        if dens:
          ax.plot(range(len(dens)), dens, marker=".", markersize=3,
                  label=r["row"].rsplit(" / ", 1)[1])
      ax.set_yscale("symlog", linthresh=1e-3)
      ax.set_ylim(0, 1.05)
      ax.set_title(f"sparsity {t}", fontsize=9)
      ax.set_xlabel("layer (input side first)", fontsize=8)
      ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("kept fraction (symlog)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"per-layer density at init: {arch}", fontsize=10)
    fig.tight_layout()
    p = path.with_name(f"{path.stem}_{_slug(arch)}.png")
    fig.savefig(p, dpi=80)
    plt.close(fig)
    written.append(str(p))
  return ", ".join(written) if written else None


def _slug(text):
  import re  # pylint: disable=g-import-not-at-top
  return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def write(spec, records, header, out_dir, stem=None) -> Dict[str, str]:
  """Writes ``<stem>.md``, ``<stem>.json`` (every run) and the plot(s).

  ``stem`` defaults to ``<experiment>_<scale>``. Files are written through a
  temporary name and renamed, so a reader never sees half a table.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  stem = stem or f"{spec.name}_{spec.scale}"
  cells = aggregate(spec, records)
  md = markdown(spec, cells, header)
  png = plot(spec, cells, records, out_dir / f"{stem}.png")
  if png:
    md += "\n" + "\n".join(
        f"![{spec.name}]({pathlib.Path(p.strip()).name})"
        for p in png.split(",")) + "\n"
  doc = dict(experiment=spec.name, title=spec.title, scale=spec.scale,
             seeds=spec.seeds, rows=spec.rows, cols=spec.cols,
             shortcuts=spec.shortcuts, header=header, cells=cells,
             paper_source=paper_numbers.SOURCES.get(spec.name),
             runs=records)
  if spec.name == "extreme":
    doc["comparisons"] = comparisons(spec, cells)
  if spec.name in COLUMN_STATS_EXPERIMENTS:
    doc["column_stats"] = column_stats(spec, cells)
  files.write_text(out_dir / f"{stem}.md", md)
  # Not files.write_json: the committed tables hold this exact format (no
  # final newline, NaN as null).
  files.write_text(out_dir / f"{stem}.json",
                   json.dumps(doc, indent=1, sort_keys=True, default=_jsonable))
  return dict(md=str(out_dir / f"{stem}.md"),
              json=str(out_dir / f"{stem}.json"), png=png)


def _jsonable(x):
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  if isinstance(x, float) and math.isnan(x):
    return None
  return str(x)

