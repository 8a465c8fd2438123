"""tools/probe_demo.py (the demo's seed spread) and how the demo prints it."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from sbp_tf import demo
from tools import probe_demo

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(candidate, seed, snip, sbp_sr):
  arm = lambda a: dict(test_accuracy=a, num_collapsed=3, connected=a > 0.11,  # noqa: E731
                       reachable_fraction=1.0, kept=10, train_seconds=1.0)
  return dict(candidate=candidate, seed=seed,
              setting=probe_demo.CANDIDATES[candidate], wall_time_s=60.0,
              snip=arm(snip), sbp_sr=arm(sbp_sr))


def test_summary_is_mean_sample_std_and_per_seed_gap():
  name = "w1_s999_n4k_e2"
  snip, sbp = [0.10, 0.12, 0.10], [0.22, 0.25, 0.20]
  s = probe_demo.summarize([_run(name, i, a, b)
                            for i, (a, b) in enumerate(zip(snip, sbp))])[name]
  assert s["seeds"] == [0, 1, 2]
  for arm, acc in (("snip", snip), ("sbp_sr", sbp)):
    assert s[arm]["mean"] == pytest.approx(np.mean(acc))
    assert s[arm]["std"] == pytest.approx(np.std(acc, ddof=1))
    assert (s[arm]["min"], s[arm]["max"], s[arm]["n"]) == (min(acc), max(acc), 3)
  gaps = np.subtract(sbp, snip)
  assert (s["gap"]["min"], s["gap"]["max"]) == pytest.approx((gaps.min(), gaps.max()))
  assert s["shows_effect"]  # smallest gap 0.10 > largest std 0.025


def test_a_seed_inside_the_spread_does_not_show_the_effect():
  name = "w05_s999_n10k_e2"
  runs = [_run(name, 0, 0.10, 0.20), _run(name, 1, 0.10, 0.11),
          _run(name, 2, 0.10, 0.19)]
  s = probe_demo.summarize(runs)[name]
  assert s["gap"]["min"] == pytest.approx(0.01) and not s["shows_effect"]
  md = probe_demo.to_markdown({"runs": runs, "summary": {name: s}})
  assert "| w05_s999_n10k_e2 | 99.9% | x0.5 | 10,000 | 2 |" in md
  assert "| no |" in md and "| w05_s999_n10k_e2 | 1 | 10.00 | 11.00 |" in md


def test_unknown_candidate_is_refused_and_nothing_is_written(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "tools" / "probe_demo.py"),
       "--candidates=w9", f"--out={tmp_path / 'p.json'}"],
      capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
  assert proc.returncode != 0 and "unknown candidate(s) ['w9']" in proc.stderr
  assert "w1_s999_n4k_e2" in proc.stderr and not (tmp_path / "p.json").exists()


def test_demo_prints_the_spread_measured_for_its_setting(tmp_path, monkeypatch,
                                                          capsys):
  name = "w1_s999_n4k_e2"
  runs = [_run(name, i, 0.10, 0.22 + 0.01 * i) for i in range(3)]
  (tmp_path / "tools").mkdir()
  (tmp_path / "tools" / "demo_probe.json").write_text(json.dumps(
      {"runs": runs, "summary": probe_demo.summarize(runs)}))
  from sbp_tf import bundle  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(bundle, "root", lambda: tmp_path)
  setting = dict(probe_demo.CANDIDATES[name])
  assert demo.measured_spread(setting)["sbp_sr"]["n"] == 3
  demo._print_seed_spread(setting, True)  # pylint: disable=protected-access
  out = capsys.readouterr().out
  assert "measured over seeds 0, 1, 2" in out
  assert "SBP-SR 0.2300 ± 0.0100 [0.2200, 0.2400]" in out
  assert "+0.1200 to +0.1400 per seed" in out and "exceeds" in out
  demo._print_seed_spread(dict(setting, epochs=9), True)  # pylint: disable=protected-access
  assert "not measured over seeds" in capsys.readouterr().out


def test_the_shipped_copy_is_the_results_json():
  # tools/demo_probe.json is what the demo reads; docs/results has the same.
  shipped = REPO / "tools" / "demo_probe.json"
  assert json.loads(shipped.read_text()) == json.loads(
      (REPO / "docs" / "results" / "demo_probe.json").read_text())
