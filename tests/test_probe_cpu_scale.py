"""tools/probe_cpu_scale.py: its candidates and its refusal of bad flags."""

import subprocess
import sys
import pathlib

from tools import probe_cpu_scale

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_candidates_are_width_images_epochs_batch_lr():
  for name, (width, n, epochs, batch, lr) in probe_cpu_scale.CANDIDATES.items():
    assert name.startswith(f"w{str(width).replace('.', '')}_e{epochs}")
    assert 0 < width <= 1 and n <= 50000 and batch > 0 and lr > 0


def test_unknown_candidate_is_refused_naming_the_known_ones(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "tools" / "probe_cpu_scale.py"),
       f"--workdir={tmp_path}", "--candidates=w9_e1",
       f"--out={tmp_path / 'p.json'}"],
      capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
  assert proc.returncode != 0
  assert "unknown candidate(s) ['w9_e1']" in proc.stderr
  assert "w025_e4" in proc.stderr and not (tmp_path / "p.json").exists()
