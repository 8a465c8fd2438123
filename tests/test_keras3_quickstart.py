"""The quick start of sbp_tf.keras3's docstring (and docs/keras3.md and the
README) runs exactly as written, in a fresh process."""

import pathlib
import re
import textwrap

import pytest

from sbp_tf import _env
from sbp_tf import keras3

import user_testlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _quick_start() -> str:
  block = keras3.__doc__.split("Quick start::\n")[1].split("\nPublic API")[0]
  return textwrap.dedent(block).strip() + "\n"


def test_docs_page_holds_the_same_quick_start():
  md = (REPO / "docs" / "keras3.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", md, re.S)
  assert _quick_start() in blocks


def _readme_block() -> str:
  """The README's Keras 3 python block (the one that imports keras3)."""
  md = (REPO / "README.md").read_text()
  blocks = [b for b in re.findall(r"```python\n(.*?)```", md, re.S)
            if "from sbp_tf import keras3" in b]
  assert len(blocks) == 1, "README needs exactly one Keras 3 quick start"
  return blocks[0]


def test_readme_holds_the_same_quick_start():
  assert _readme_block() == _quick_start()
  md = (REPO / "README.md").read_text()
  assert "--config.framework=keras3" in md
  assert "| `sbp_tf.keras3` | [docs/keras3.md](docs/keras3.md) |" in md


@pytest.mark.slow
def test_quick_start_runs(tmp_path):
  # The README's block, which is the docstring's and docs/keras3.md's too.
  code = _readme_block()
  assert len(code.strip().splitlines()) <= 18
  # A user's environment: no TF_CPP_MIN_LOG_LEVEL, and on a CPU machine no
  # TensorFlow log line on stderr (start-up, cuInit, converter, XNNPACK).
  out = user_testlib.run(["-c", code], cwd=tmp_path, timeout=400)
  assert out.returncode == 0, out.stderr[-3000:]
  if not _env.has_nvidia_device():
    assert user_testlib.tf_log_lines(out.stderr) == [], out.stderr[-3000:]
  ratio = float(out.stdout.strip().splitlines()[-1])
  assert 0.0 < ratio < 0.5  # 95% of the weights pruned: a much smaller file
  assert "| **total** |" in out.stdout
  assert (tmp_path / "pruned.keras").exists()
  assert (tmp_path / "pruned.tflite").exists()
