"""tools/reproduce.py: grids, resume, aggregation, tables; smoke end to end.

The smoke scale of every experiment runs here on the real offline data
(skipped only when ../shared/data is absent).
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tools import paper_numbers
from tools import reproduce
from tools import reproduce_experiments as rx
from tools import reproduce_report as rr

REPO = pathlib.Path(__file__).resolve().parents[1]


# --- definitions and helpers (no training) ---------------------------------

def test_names_numbers_and_bad_input():
  assert [rx.resolve_name(str(i)) for i in range(1, 8)] == list(rx.ORDER)
  assert rx.resolve_name("Table4") == "table4"
  assert rx.resolve_name("7") == "extreme"
  with pytest.raises(ValueError, match="unknown experiment 'table3'.*1-7"):
    rx.resolve_name("table3")
  with pytest.raises(ValueError, match="unknown scale 'tpu'.*smoke, cpu, cpu_full, gpu"):
    rx.build("table1", "tpu")
  with pytest.raises(ValueError, match="--scale=gpu is defined only for "
                     "extreme, not table1"):
    rx.build("table1", "gpu")
  assert rx.parse_seeds(None, "cpu") == [0, 1]
  assert rx.parse_seeds("3", "smoke") == [0, 1, 2]
  assert rx.parse_seeds("0,4", "smoke") == [0, 4]
  with pytest.raises(ValueError, match="neither a count nor a comma list"):
    rx.parse_seeds("a,b", "smoke")
  with pytest.raises(ValueError, match="distinct"):
    rx.parse_seeds("1,1", "smoke")


def test_paper_scale_is_the_published_grid():
  spec = rx.build("table1", "paper")
  assert spec.cols == ["90%", "95%", "98%", "99.5%", "99.9%"]
  assert len(spec.rows) == 9 and spec.seeds == [0, 1, 2]
  assert len(spec.cells) == 9 * 5 * 3
  cfg = {c.run_id: c.config for c in spec.cells}[
      "resnet104_sbp_sr_stable/99p9/seed2"]
  assert cfg["model"]["name"] == "resnet104"
  assert cfg["model"]["options"]["stable"] is True
  assert cfg["prune"]["sparsity"] == 0.999 and cfg["train"]["epochs"] == 160
  assert cfg["dataset"]["limit_train"] is None
  assert cfg["prune"]["rescale"] is False  # SBP-SR: no rescaling trick
  t4 = rx.build("table4", "paper")
  assert t4.cols == ["L=10", "L=50", "L=100"]
  by = {(c.row, c.col): c.config for c in t4.cells if c.seed == 0}
  assert by[("Ordered phase", "L=50")]["model"]["options"]["init"] == "ordered"
  assert by[("EOC + rescaling", "L=100")]["prune"]["rescale"] is True
  assert by[("EOC", "L=100")]["prune"]["sparsity"] == 0.5


def test_every_config_validates_and_run_ids_are_unique():
  from sbp_tf import config as sbp_config
  for name in rx.ORDER:
    for scale in rx.SCALES:
      if scale in rx.ONLY_FOR and name not in rx.ONLY_FOR[scale]:
        continue
      spec = rx.build(name, scale)
      ids = [c.run_id for c in spec.cells]
      assert len(ids) == len(set(ids)), (name, scale)
      assert spec.shortcuts, (name, scale)
      if spec.name != "collapse":
        for c in spec.cells[:3] + spec.cells[-3:]:
          sbp_config.validate(c.config)


def test_mean_std_matches_numpy():
  v = [0.91, 0.93, 0.9]
  got = rr.mean_std(v)
  assert got["n"] == 3
  np.testing.assert_allclose(got["mean"], np.mean(v))
  np.testing.assert_allclose(got["std"], np.std(v, ddof=1))
  assert rr.mean_std([0.5]) == dict(mean=0.5, std=0.0, n=1)
  assert rr.mean_std([]) == dict(mean=None, std=None, n=0)


def test_paper_numbers_stay_beside_measured_cells(tmp_path):
  spec = rx.build("table1", "cpu", seeds="2")
  records = []
  for i, c in enumerate(spec.cells):
    done = c.col == "99.9%"
    records.append(dict(row=c.row, col=c.col, seed=c.seed, run_id=c.run_id,
                        run_dir="-", status="done" if done else "pending",
                        metrics=dict(test_accuracy=0.1 + 0.01 * i)
                        if done else None, config={}))
  cells = rr.aggregate(spec, records)
  snip = [e for e in cells if e["row"] == "ResNet32 / SNIP (standard)"
          and e["col"] == "99.9%"][0]
  accs = [r["metrics"]["test_accuracy"] for r in records
          if r["row"] == snip["row"] and r["col"] == "99.9%"]
  np.testing.assert_allclose(snip["mean"], np.mean(accs))
  assert snip["paper"] == paper_numbers.lookup("table1", snip["row"], "99.9%")
  header = dict(command="cmd", machine="m", tf_version="tf", wall_time="1 s",
                done=4, total=len(records), errors=0)
  files = rr.write(spec, records, header, tmp_path)
  md = pathlib.Path(files["md"]).read_text()
  line = [l for l in md.splitlines() if l.startswith("| ResNet32 / SNIP")][0]
  assert line.rstrip(" |").endswith(
      f"{100 * snip['mean']:.2f} ± {100 * snip['std']:.2f} (n=2) | "
      "9.98 ± 0.08")
  assert "PARTIAL" in md and "ResNets: width x0.25" in md
  doc = json.loads(pathlib.Path(files["json"]).read_text())
  assert len(doc["runs"]) == len(records)


def test_sbp_sr_never_rescales_and_the_ablation_row_is_labelled():
  """SBP-SR is SBP on the Stable ResNet; rescaling only in its own row."""
  seen_ablation = 0
  for name in rx.ORDER:
    if name == "collapse":
      continue
    for scale in rx.SCALES:
      if scale in rx.ONLY_FOR and name not in rx.ONLY_FOR[scale]:
        continue
      for c in rx.build(name, scale).cells:
        opts = c.config["model"]["options"]
        if "SBP-SR" in c.row:
          assert opts["stable"] is True, c.run_id
          if "rescaling" in c.row:
            assert "ablation" in c.row and c.config["prune"]["rescale"]
            seen_ablation += 1
          else:
            assert c.config["prune"]["rescale"] is False, (name, c.run_id)
  assert seen_ablation > 0
  t1 = rx.build("table1", "cpu")
  assert rx.ABLATION_RESCALE in [r.split(" / ", 1)[1] for r in t1.rows]
  assert any("ablation row adds the rescaling" in s for s in t1.shortcuts)


def test_paper_numbers_come_verbatim_from_the_shipped_json():
  shipped = REPO / "tools" / "paper_tables.json"
  source = REPO.parent / "shared" / "paper" / "tables.json"
  if source.exists():  # the project's transcription, copied byte for byte
    assert shipped.read_bytes() == source.read_bytes()
  tables = json.loads(shipped.read_text(encoding="utf-8"))["tables"]

  def cell(table, keys, col):
    t = tables[table]
    row = [r for r in t["rows"] if tuple(r[:len(keys)]) == keys][0]
    return row[t["header"].index(col)]

  look = paper_numbers.lookup
  assert look("table1", "ResNet32 / SBP-SR (stable)", "99.9%") == cell(
      "table1", ("ResNet32", "SBP-SR"), "99.9%")
  assert look("table1", "ResNet104 / SNIP (standard)", "99.5%") == cell(
      "table1", ("ResNet104", "SNIP"), "99.5%")
  assert look("table1", f"ResNet32 / {rx.ABLATION_RESCALE}", "90%") is None
  assert look("table2", "ResNet50 / Magnitude", "95%") == cell(
      "table2", ("ResNet50", "MBP"), "C10 95%")
  assert look("table4", "Ordered phase", "L=10") == cell(
      "table4", ("Ordered phase",), "L = 10")
  assert look("table5", "3xVGG16 / EOC + rescaling", "85%") == cell(
      "table5", ("3xVGG16", "EOC + rescaling"), "85%")
  assert look("table9", "tanh / SBP-SR (stable)", "99.9%") == cell(
      "table9", ("ResNet32", "tanh", "SBP-SR"), "99.9%")
  assert look("extreme", "no BN / SNIP (standard)", "99.5%") == cell(
      "table1", ("ResNet32", "SNIP"), "99.5%")
  assert look("extreme", "ResNet104 / BN / SBP-SR (stable)", "99.9%") == cell(
      "table1", ("ResNet104", "SBP-SR"), "99.9%")
  assert look("collapse", "ResNet32 (standard) / SynFlow", "90%") is None
  # Every cell of every training grid that the paper prints has its number.
  for name in ("table1", "table2", "table4", "table5", "table9", "extreme"):
    spec = rx.build(name, "paper")
    for r in spec.rows:
      found = [look(name, r, c) for c in spec.cols]
      if "ablation" in r:  # our own row: the paper has no number for it
        assert found == [None] * len(found)
      else:
        assert any(v is not None for v in found), (name, r)
  assert paper_numbers.mean_of("51.56 ± 1.12") == 51.56
  assert paper_numbers.is_failure("10.00 ± 0.0")
  assert not paper_numbers.is_failure("98.12 ± 0.13")


def test_welch_matches_an_independent_computation():
  from scipy import stats
  from tools import reproduce_stats
  a, b = [0.225, 0.231, 0.219], [0.101, 0.1, 0.113, 0.098]
  w = reproduce_stats.welch(a, b)
  ref = stats.ttest_ind(a, b, equal_var=False)
  np.testing.assert_allclose([w["t"], w["p"]], [ref.statistic, ref.pvalue],
                             rtol=1e-10)
  va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
  np.testing.assert_allclose(
      w["df"], (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3), rtol=1e-12)
  assert w["diff"] == pytest.approx(np.mean(a) - np.mean(b))
  assert reproduce_stats.welch([0.1], [0.2, 0.3]) is None
  same = reproduce_stats.welch([0.1, 0.1], [0.1, 0.1])
  assert same["p"] == 1.0 and same["t"] == 0.0


def test_extreme_grid_is_full_width_with_and_without_batch_norm():
  cpu = rx.build("extreme", "cpu", seeds=3)
  assert cpu.cols == ["99.5%", "99.9%"] and len(cpu.cells) == 4 * 2 * 3
  for c in cpu.cells:
    cfg = c.config
    assert cfg["model"]["name"] == "resnet32"
    assert cfg["model"]["options"]["width_multiplier"] is None
    assert cfg["model"]["options"]["batch_norm"] is (not c.row.startswith(
        "no BN"))
    assert cfg["model"]["options"]["stable"] is ("SBP-SR" in c.row)
    assert cfg["prune"]["method"] == "sbp" and not cfg["prune"]["rescale"]
    assert cfg["train"]["validate_each_epoch"] is True
  gpu = rx.build("extreme", "gpu")
  models = {c.config["model"]["name"] for c in gpu.cells}
  assert models == {"resnet32", "resnet104"} and len(gpu.cells) == 8
  assert all(c.config["dataset"]["limit_train"] is None for c in gpu.cells)
  assert all(c.config["model"]["options"]["batch_norm"] is rx.GPU_BATCH_NORM
             for c in gpu.cells)


def test_cli_rejects_bad_experiment_before_any_work(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "tools" / "reproduce.py"),
       "--experiment=table7", "--scale=smoke", f"--workdir={tmp_path}"],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "unknown experiment 'table7'" in proc.stderr
  assert not any(tmp_path.iterdir())


# --- smoke scale, end to end -------------------------------------------------

def _check_table(out, name):
  recs = out["records"]
  errors = [(r["run_id"], r.get("error")) for r in recs
            if r["status"] != "done"]
  assert not errors, errors
  files = out["files"]
  md = pathlib.Path(files["md"]).read_text()
  assert md.startswith("# ") and "Shortcuts at this scale" in md
  assert "Cells finished: %d of %d" % (len(recs), len(recs)) in md
  doc = json.loads(pathlib.Path(files["json"]).read_text())
  assert [r["run_id"] for r in doc["runs"]] == [r["run_id"] for r in recs]
  for p in files["png"].split(","):
    assert pathlib.Path(p.strip()).stat().st_size > 1000
  return recs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["table1", "table2", "table4", "table5",
                                  "table9"])
def test_smoke_training_experiments(name, tmp_path, shared_data):
  del shared_data
  out = reproduce.run_grid(name, "smoke", workdir=tmp_path / "runs",
                           out_dir=tmp_path / "out")
  recs = _check_table(out, name)
  spec = out["spec"]
  for r in recs:
    m = r["metrics"]
    assert 0.0 <= m["test_accuracy"] <= 1.0
    target = r["config"]["prune"]["sparsity"]
    # The kept count is exact up to rounding of the global top-k.
    assert abs(m["sparsity"] - target) < 2e-3, (r["run_id"], m["sparsity"])
    assert m["epochs_done"] == r["config"]["train"]["epochs"]
  # Rerunning the command trains nothing and gives the same table.
  again = reproduce.run_grid(name, "smoke", workdir=tmp_path / "runs",
                             out_dir=tmp_path / "out")
  assert again["ran"] == 0 and again["pending"] == 0
  assert ([r["metrics"]["test_accuracy"] for r in again["records"]] ==
          [r["metrics"]["test_accuracy"] for r in recs])
  assert len(spec.cells) == len(recs)


@pytest.mark.slow
def test_smoke_extreme_reports_best_epoch_diagnostics_and_welch(
    tmp_path, shared_data):
  del shared_data
  out = reproduce.run_grid("extreme", "smoke", workdir=tmp_path / "runs",
                           out_dir=tmp_path / "out", seeds=2)
  recs = _check_table(out, "extreme")
  for r in recs:
    m = r["metrics"]
    rows = json.loads((pathlib.Path(r["run_dir"]) / "metrics.json")
                      .read_text())
    vals = [row["val_accuracy"] for row in rows]
    assert len(vals) == r["config"]["train"]["epochs"]
    assert m["best_test_accuracy"] == pytest.approx(max(vals))
    assert m["best_test_accuracy"] >= m["test_accuracy"] - 1e-6
    init = m["at_init"]
    assert init["total_weights"] > init["kept_weights"] > 0
    assert init["kept_weights"] == round(
        (1 - r["config"]["prune"]["sparsity"]) * init["total_weights"])
    assert init["fully_pruned_layers"] == len(init["collapsed"])
    assert 0.0 <= init["reachable_fraction"] <= 1.0
  doc = json.loads(pathlib.Path(out["files"]["json"]).read_text())
  comps = doc["comparisons"]
  assert {(c["group"], c["col"]) for c in comps} == {
      (g, s) for g in ("BN", "no BN") for s in ("99.5%", "99.9%")}
  md = pathlib.Path(out["files"]["md"]).read_text()
  assert "Welch's t-test" in md and "| BN / SBP-SR (stable) | 99.9% |" in md


@pytest.mark.slow
def test_gpu_scale_wiring_runs_one_shrunk_cell(tmp_path, shared_data):
  """The prepared GPU grid's cells run end to end (shrunk to smoke size)."""
  del shared_data
  spec = rx.build("extreme", "gpu")
  cell = [c for c in spec.cells if c.config["model"]["name"] == "resnet104"
          and "SBP-SR" in c.row][0]
  cfg = json.loads(json.dumps(cell.config))
  cfg["model"]["name"] = "resnet_cifar"
  cfg["model"]["options"].update(depth=8, width_multiplier=0.125)
  cfg["dataset"].update(limit_train=64, limit_test=32)
  cfg["train"].update(epochs=1, batch_size=32)
  small = rx.Cell(cell.experiment, cell.row, cell.col, cell.seed, cell.kind,
                  cfg)
  m = reproduce.run_cell(small, tmp_path / cell.run_id)
  assert m["epochs_done"] == 1 and "best_test_accuracy" in m
  assert abs(m["sparsity"] - cell.config["prune"]["sparsity"]) < 2e-3
  assert m["at_init"]["kept_weights"] > 0


@pytest.mark.slow
def test_smoke_collapse_and_resume(tmp_path, shared_data):
  del shared_data
  first = reproduce.run_grid("collapse", "smoke", workdir=tmp_path / "runs",
                             out_dir=tmp_path / "out", max_cells=2)
  assert first["ran"] == 2 and first["pending"] == len(first["records"]) - 2
  assert "PARTIAL" in pathlib.Path(first["files"]["md"]).read_text()
  out = reproduce.run_grid("collapse", "smoke", workdir=tmp_path / "runs",
                           out_dir=tmp_path / "out")
  assert out["ran"] == len(out["records"]) - 2
  recs = _check_table(out, "collapse")
  for r in recs:
    m = r["metrics"]
    targets = r["config"]["targets"]
    assert 0.0 <= m["critical_sparsity"] < 1.0
    for t in targets:
      row = m["targets"][rx._pct(t)]
      assert abs(row["sparsity"] - t) < 2e-3
      # The critical sparsity agrees with the row's own cells: at or below
      # it no layer is fully pruned; beyond it (one-shot scores) or at the
      # bracket's upper end (iterative SynFlow) at least one is.
      if t <= m["critical_sparsity"] + 1e-6:
        assert row["collapsed_layers"] == 0, (r["run_id"], t)
      elif r["config"]["method"] != "synflow" or t == m[
          "critical_bracket"][1]:
        assert row["collapsed_layers"] >= 1, (r["run_id"], t)
    if r["config"]["method"] == "synflow":
      assert m["critical_bracket"][0] == m["critical_sparsity"]
      # A chain CNN with a fully pruned layer has no input-output path.
      if r["config"]["model"] == "vcnn" and row["collapsed_layers"]:
        assert not row["connected"], (r["run_id"], t)
      dens = m["layer_density"][rx._pct(t)]
      assert len(dens) == m["num_layers"] and min(dens) >= 0
  # A fresh machine without the run folders resumes from the committed table:
  # identical configs are taken from it, a changed config is run again.
  table = pathlib.Path(out["files"]["json"])
  fresh = reproduce.run_grid("collapse", "smoke", workdir=tmp_path / "other",
                             out_dir=tmp_path / "out", max_cells=0)
  assert fresh["ran"] == 0 and fresh["pending"] == 0
  assert ([r["metrics"] for r in fresh["records"]] ==
          [r["metrics"] for r in json.loads(table.read_text())["runs"]])
  doc = json.loads(table.read_text())
  doc["runs"][0]["config"]["seed"] = 12345  # as if the grid had changed
  table.write_text(json.dumps(doc))
  changed = reproduce.run_grid("collapse", "smoke", workdir=tmp_path / "o2",
                               out_dir=tmp_path / "out", max_cells=0)
  assert changed["pending"] == 1
  assert changed["records"][0]["status"] == "pending"
  none = reproduce.run_grid("collapse", "smoke", workdir=tmp_path / "o3",
                            out_dir=tmp_path / "out", max_cells=0,
                            reuse_table=False)
  assert none["pending"] == len(none["records"])


def test_table2_has_the_papers_nine_rows():
  from tools import paper_numbers
  paper = [r[1] for r in paper_numbers.tables()["table2"]["rows"]
           if r[0] == "ResNet32"]
  assert len(paper) == 9  # no pruning, OBD, ..., SBP-SR
  spec = rx.build("table2", "cpu", 1)
  ours = [r.split(" / ", 1)[1] for r in spec.rows]
  assert ours == paper + [rx.ABLATION_RESCALE]
  by_row = {}
  for c in spec.cells:
    by_row.setdefault(c.row.split(" / ", 1)[1], []).append(c)
  dense = by_row["no pruning"]
  assert [c.col for c in dense] == ["all"]  # one run fills the row
  assert dense[0].config["prune"]["sparsity"] == 0.0

  def setting(name):
    c = by_row[name][0].config
    return (c["prune"]["method"], c["model"]["options"]["stable"],
            c["prune"]["rescale"])
  assert setting("GraSP-SR") == ("grasp", True, False)
  assert setting("SBP-SR") == ("sbp", True, False)
  assert setting("GraSP") == ("grasp", False, False)
  assert setting("OBD") == ("obd", False, False)
  # ResNet50 at paper scale: the paper prints no OBD / GraSP-SR rows there.
  rows50 = [r for r in rx.build("table2", "paper", 1).rows
            if r.startswith("ResNet50")]
  assert "ResNet50 / OBD" not in rows50 and "ResNet50 / GraSP-SR" not in rows50


# --- per-column statistics: rank correlation, Welch vs SNIP (no training) --


def _records_with_means(spec, mean_of_cell, spread):
  """Three seeds per cell at ``mean +- spread(row)``: the mean is exact."""
  recs = []
  for c in spec.cells:
    i = spec.rows.index(c.row)
    m = mean_of_cell(c.row, c.col)
    value = m + (c.seed - 1) * spread(i)  # seeds 0, 1, 2: -, 0, +
    recs.append(dict(row=c.row, col=c.col, seed=c.seed, run_id=c.run_id,
                     run_dir="-", status="done",
                     metrics=dict(test_accuracy=value), config={}))
  return recs


def _rho_no_ties(a, b):
  """1 - 6 sum(d^2) / (n (n^2 - 1)) with numpy ranks (no ties allowed)."""
  a, b = np.asarray(a), np.asarray(b)
  assert len(set(a)) == len(a) and len(set(b)) == len(b), "test data tie"
  d = np.argsort(np.argsort(a)) - np.argsort(np.argsort(b))
  n = len(a)
  return 1 - 6 * float(np.sum(d * d)) / (n * (n * n - 1))


def test_table2_column_stats_match_an_independent_computation(tmp_path):
  from tools import reproduce_stats
  spec = rx.build("table2", "cpu", seeds="3")
  paper = {(r, c): paper_numbers.mean_of(paper_numbers.lookup("table2", r, c))
           for r in spec.rows for c in spec.cols}

  def mean_of_cell(row, col):
    i = spec.rows.index(row)
    if col == "all":           # the dense row: one value in every column
      return 0.99
    if col == "90%" and paper[(row, col)] is not None:
      return paper[(row, col)] / 100 - 0.3   # same order as the paper
    return 0.5 + 0.03 * ((7 * i + 3 * spec.cols.index(col)) % 11)

  recs = _records_with_means(spec, mean_of_cell, lambda i: 0.002 * (1 + i))
  cells = rr.aggregate(spec, recs)
  stats = {(e["group"], e["col"]): e for e in rr.column_stats(spec, cells)}
  assert set(stats) == {("ResNet32", c) for c in spec.cols + ["all"]}
  snip = "ResNet32 / SNIP"
  by = {(c["row"], c["col"]): c for c in cells}
  for col in spec.cols:
    e = stats[("ResNet32", col)]
    used = [r for r in spec.rows if paper[(r, col)] is not None]
    assert e["rows_compared"] == used and e["n_rows"] == len(used)
    assert rx.ABLATION_RESCALE in " ".join(e["rows_left_out"])
    want = _rho_no_ties([by[(r, col)]["mean"] for r in used],
                        [paper[(r, col)] for r in used])
    assert e["spearman"] == pytest.approx(want, abs=1e-12)
    assert e["snip_row"] == snip
    assert [w["row"] for w in e["welch"]] == [r for r in spec.rows
                                              if r != snip]
    for w in e["welch"]:
      seeds = lambda row: [x["metrics"]["test_accuracy"] for x in recs
                           if x["row"] == row and x["col"] in (col, "all")]
      ref = reproduce_stats.welch(seeds(w["row"]), seeds(snip))
      assert w["test"]["diff"] == pytest.approx(
          mean_of_cell(w["row"], col if w["row"] != spec.rows[0] else "all")
          - mean_of_cell(snip, col), abs=1e-12)
      for k in ("diff", "t", "p", "df"):
        assert w["test"][k] == pytest.approx(ref[k], rel=1e-12)
  assert stats[("ResNet32", "90%")]["spearman"] == pytest.approx(1.0)
  # 95%/98%: no paper number for the dense row and the ablation.
  assert [stats[("ResNet32", c)]["n_rows"] for c in spec.cols] == [9, 8, 8]
  pooled = [(by[(r, c)]["mean"], paper[(r, c)]) for r in spec.rows
            for c in spec.cols if paper[(r, c)] is not None]
  assert stats[("ResNet32", "all")]["n_rows"] == len(pooled) == 25
  assert stats[("ResNet32", "all")]["spearman"] == pytest.approx(
      reproduce_stats.spearman(*zip(*pooled)))
  _check_column_stats_markdown(spec, cells, recs, stats, tmp_path)


def _check_column_stats_markdown(spec, cells, recs, stats, tmp_path):
  header = dict(command="cmd", machine="m", tf_version="tf", wall_time="1 s",
                done=len(recs), total=len(recs), errors=0)
  files = rr.write(spec, recs, header, tmp_path)
  md = pathlib.Path(files["md"]).read_text()
  main = md.index("| ResNet32 / SNIP |")
  assert md.index("Rank correlation with the paper") > main
  assert "| ResNet32 | 90% | 9 of 10 | +1.00 |" in md
  rho95 = stats[("ResNet32", "95%")]["spearman"]
  assert f"| ResNet32 | 95% | 8 of 10 | {rho95:+.2f} |" in md
  line = [l for l in md.splitlines()
          if l.startswith("| ResNet32 / GraSP |")][-1]
  for col in spec.cols:
    w = [x["test"] for x in stats[("ResNet32", col)]["welch"]
         if x["row"] == "ResNet32 / GraSP"][0]
    text = f"{100 * w['diff']:+.2f} (t = {w['t']:.2f}, p = {w['p']:.2g})"
    assert text in line, (text, line)
  assert md.count("| ResNet32 / SNIP |") == 1  # not compared with itself
  doc = json.loads(pathlib.Path(files["json"]).read_text())
  got = {(e["group"], e["col"]): e for e in doc["column_stats"]}
  assert got[("ResNet32", "95%")]["spearman"] == pytest.approx(rho95)
  assert len(got[("ResNet32", "98%")]["welch"]) == len(spec.rows) - 1


def test_two_row_groups_say_their_order_and_one_seed_has_no_welch():
  spec = rx.build("table9", "cpu", seeds="1")
  paper = {(r, c): paper_numbers.mean_of(paper_numbers.lookup("table9", r, c))
           for r in spec.rows for c in spec.cols}
  sbp, snip = "tanh / SBP-SR (stable)", "tanh / SNIP (standard)"
  assert paper[(sbp, "90%")] is not None and paper[(snip, "90%")] is not None

  def mean_of_cell(row, col):
    p = paper[(row, col)]
    if p is None:
      return 0.4                      # the ablation rows
    return p / 100 if row.startswith("ReLU") else 1 - p / 100  # tanh: reversed
  recs = _records_with_means(spec, mean_of_cell, lambda i: 0.0)
  cells = rr.aggregate(spec, recs)
  stats = {(e["group"], e["col"]): e for e in rr.column_stats(spec, cells)}
  for col in spec.cols:
    relu, tanh = stats[("ReLU", col)], stats[("tanh", col)]
    assert relu["n_rows"] == tanh["n_rows"] == 2
    assert relu["spearman"] is None and relu["order_of_two"] == "same"
    assert tanh["order_of_two"] == "opposite"
    assert all(w["test"] is None for w in relu["welch"] + tanh["welch"])
    assert [w["row"] for w in tanh["welch"]] == [
        r for r in spec.rows if r.startswith("tanh / ") and r != snip]
  md = rr.markdown(spec, cells, dict(command="c", machine="m", tf_version="t",
                                     wall_time="1 s", done=1, total=1,
                                     errors=0))
  assert ("| tanh | 90% | 2 of 3 | n/a (fewer than 3 rows; the 2 compared "
          "are in the reverse of the paper's order) |") in md
  line = [l for l in md.splitlines() if l.startswith(f"| {sbp} |")][-1]
  assert line.count("fewer than 2 seeds") == len(spec.cols)


def test_cpu_full_scale_trains_on_every_image_with_the_papers_rows():
  """cpu_full: all 50,000 images, 8 epochs, x0.25, SynFlow at 100 rounds,
  the paper's rows only (no ablation), 3 seeds; tables 1, 2 and 9 only."""
  sizes = {}
  for name in ("table1", "table2", "table9"):
    spec = rx.build(name, "cpu_full")
    assert spec.seeds == [0, 1, 2]
    assert not any("ablation" in r for r in spec.rows), spec.rows
    assert any("left out at this scale" in x for x in spec.shortcuts)
    assert not any("ablation row adds" in x or "ablation rows add" in x
                   for x in spec.shortcuts)
    for c in spec.cells:
      d, t = c.config["dataset"], c.config["train"]
      assert (d["limit_train"], d["limit_test"]) == (None, None)
      assert (t["epochs"], t["batch_size"], t["lr"]) == (8, 128, 0.1)
      assert c.config["model"]["options"]["width_multiplier"] == 0.25
      if c.config["prune"]["method"] == "synflow":
        assert c.config["prune"]["rounds"] == 100
    sizes[name] = len({(c.row, c.col) for c in spec.cells})
  # 2 x 5 + (1 dense + 8 x 3) + 4 x 3 settings.
  assert sizes == {"table1": 10, "table2": 25, "table9": 12}
  with pytest.raises(ValueError, match="cpu_full is defined only for"):
    rx.build("table5", "cpu_full")
