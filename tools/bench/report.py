"""The benchmark's results: targets, merging runs, markdown and files (no
section). Every section-specific part comes from the registry."""

import json
import pathlib
from typing import Any, Dict, List

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import files
from tools import bench
from tools.bench import common

SCHEMA_VERSION = 1


def targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
  """Every section's targets (``Section.targets``), in section order."""
  out = []
  for name, section in bench.sections().items():
    out += section.targets(results["sections"].get(name, {}))
  return out


def merge(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
  """``old`` with the sections of ``new`` replacing its own; targets redone.

  ``runs`` records, per run, its command, start time, machine load and the
  sections it measured, so every figure stays traceable to its run.

  Raises:
    ValueError: ``old`` and ``new`` are of different modes (quick/full).
  """
  if old.get("mode") != new.get("mode"):
    raise ValueError(f"Cannot merge a {new.get('mode')} run into a "
                     f"{old.get('mode')} result. Fix: use the same mode, or "
                     "drop --merge to write a fresh result.")
  runs = [r for r in old.get("runs") or [{
      "command": old["command"], "started_utc": old["started_utc"],
      "wall_s": old["wall_s"], "shared": old["machine"].get("shared"),
      "other_cpu_cores": old["machine"].get("other_cpu_cores"),
      "sections": list(old["sections"])}]]
  for r in runs:  # also results merged before runs recorded their CPU
    r.setdefault("cpu_model", old["machine"].get("cpu_model"))
  for r in runs:  # a re-measured section now belongs to the new run
    r["sections"] = [x for x in r["sections"] if x not in new["sections"]]
  runs = [r for r in runs if r["sections"]]
  runs.append({"command": new["command"], "started_utc": new["started_utc"],
               "wall_s": new["wall_s"], "shared": new["machine"].get("shared"),
               "other_cpu_cores": new["machine"].get("other_cpu_cores"),
               "cpu_model": new["machine"].get("cpu_model"),
               "sections": list(new["sections"])})
  out = dict(old, sections=dict(old["sections"], **new["sections"]),
             runs=runs, partial=bool(new.get("partial")))
  out["machine"] = dict(new["machine"], shared=any(r["shared"] for r in runs))
  out["targets"] = targets(out)
  out["wall_s"] = sum(r["wall_s"] for r in runs)
  return out


def to_markdown(res: Dict[str, Any]) -> str:
  """The human summary: machine, targets, then one table per section."""
  fmt = common.fmt
  m = res["machine"]
  cpus = {r.get("cpu_model") or m["cpu_model"] for r in res.get("runs") or []}
  if res.get("runs"):
    where = ("on the same machine" if len(cpus) == 1 else
             "on different machines (each run's CPU below; a ratio is only "
             "ever taken within one run)")
    head = (f"Mode: **{res['mode']}**. Sections measured by "
            f"{len(res['runs'])} runs of the same tool {where}:")
  else:
    head = (f"Mode: **{res['mode']}**. Generated {res['started_utc']} in "
            f"{res['wall_s']:.0f} s by `{res['command']}`.")
  if res.get("partial"):
    head += " **Partial: the run was still going or was interrupted.**"
  lines = ["# sbp_tf benchmark", "", head, ""]
  for r in res.get("runs") or []:
    cpu = f", {r['cpu_model']}" if len(cpus) > 1 and r.get("cpu_model") else ""
    lines.append(f"- `{r['command']}` ({r['started_utc']}, {r['wall_s']:.0f}"
                 f" s{cpu}{', machine shared' if r.get('shared') else ''}): "
                 + ", ".join(r["sections"]))
  if res.get("runs"):
    lines.append("")
  lines += [
      "Figures are medians over repeats, with [min, max] in brackets; every "
      "ratio is taken against its reference measured in the same run "
      "(paired, interleaved rounds where marked).", "",
      "## Machine", "",
      *(["Of the newest run; the CPU of each run is listed above.", ""]
        if len(cpus) > 1 else []),
      f"- CPU: {m['cpu_model']}, {m['usable_cores']} usable cores "
      f"({m['logical_cores']} logical), {m['memory_gib']} GiB RAM; GPUs: "
      f"{', '.join(m['gpus']) or 'none'}",
      "- Versions: " + ", ".join(f"{k} {v}" for k, v in
                                  m["versions"].items()),
      f"- Load average (1 min) at start {m['loadavg_start'][0]:.2f}, "
      f"peak seen {m['loadavg_peak']:.2f}, at end {m['loadavg_end'][0]:.2f}; "
      f"other processes used {fmt(m['other_cpu_cores'], 2)} cores on "
      "average during the run (from /proc/stat minus this process).",
  ]
  if m.get("shared"):
    which = ("A run marked 'machine shared' above had other processes "
             "running" if len(res.get("runs") or ()) > 1 else
             "The machine was shared with other processes during this run")
    lines.append(f"- **{which}** (they used more than 0.25 of a core on "
                 "average): its absolute times are pessimistic and noisy; "
                 "the paired ratios are the figures to read.")
  verdicts = {True: "met", False: "**missed**", None: "-"}
  lines += ["", "## Targets", "", *common.table(
      ["target", "figure", "measured", "[min, max]", "limit", "met"],
      [[t["name"], t["figure"], fmt(t["value"]),
        (f"[{fmt(t['spread'][0])}, {fmt(t['spread'][1])}]"
         if t["spread"] else "-"),
        f"{t['op']} {t['limit']}", verdicts[t["met"]]]
       for t in res["targets"]])]
  secs = res["sections"]
  for name, section in bench.sections().items():
    if name not in secs:
      continue
    sec = secs[name]
    lines += ["", f"## {name.capitalize()}", ""]
    if sec.get("status") != "ok":
      lines.append(f"_{sec.get('status')}: {sec.get('reason', '')}_")
      continue
    lines += section.markdown(sec)
    lines.append("")
    lines.append(f"- Section wall time {sec['wall_s']:.0f} s; other processes "
                 f"used {fmt(sec.get('other_cpu_cores'), 2)} cores meanwhile.")
    for note in sec.get("notes", []):
      lines.append(f"- {note}")
  if res.get("analysis"):
    lines += ["", "## Analysis", "", res["analysis"]]
  return "\n".join(lines) + "\n"


def write(res: Dict[str, Any], out_dir) -> Dict[str, pathlib.Path]:
  """Writes ``benchmark.json`` and ``benchmark.md`` into ``out_dir``
  (atomically: an interrupted run never leaves half a file)."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {"json": out_dir / "benchmark.json", "md": out_dir / "benchmark.md"}
  # Insertion order, not files.write_json's sorted keys: the markdown
  # re-rendered from this file (--render_only, --merge) lists versions and
  # a run's sections in the order they were measured.
  files.write_text(paths["json"], json.dumps(res, indent=1) + "\n")
  files.write_text(paths["md"], to_markdown(res))
  return paths
