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
  assert [rx.resolve_name(str(i)) for i in range(1, 7)] == list(rx.ORDER)
  assert rx.resolve_name("Table4") == "table4"
  with pytest.raises(ValueError, match="unknown experiment 'table3'.*1-6"):
    rx.resolve_name("table3")
  with pytest.raises(ValueError, match="unknown scale 'gpu'.*smoke, cpu, paper"):
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
  assert len(spec.rows) == 6 and spec.seeds == [0, 1, 2]
  assert len(spec.cells) == 6 * 5 * 3
  cfg = {c.run_id: c.config for c in spec.cells}[
      "resnet104_sbp_sr_stable/99p9/seed2"]
  assert cfg["model"]["name"] == "resnet104"
  assert cfg["model"]["options"]["stable"] is True
  assert cfg["prune"]["sparsity"] == 0.999 and cfg["train"]["epochs"] == 160
  assert cfg["dataset"]["limit_train"] is None
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
      f"{100 * snip['mean']:.2f} ± {100 * snip['std']:.2f} (n=2) | 9.98")
  assert "PARTIAL" in md and "ResNets: width x0.25" in md
  doc = json.loads(pathlib.Path(files["json"]).read_text())
  assert len(doc["runs"]) == len(records)


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
      # Beyond the critical sparsity at least one layer is fully pruned;
      # at or below it none is (one-shot scores).
      if r["config"]["method"] != "synflow":
        if t > m["critical_sparsity"] + 1e-6:
          assert row["collapsed_layers"] >= 1, (r["run_id"], t)
        else:
          assert row["collapsed_layers"] == 0, (r["run_id"], t)
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
