"""The README's code works as written."""

import pathlib
import re
import warnings

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _python_blocks():
  return re.findall(r"```python\n(.*?)```", README, re.S)


def test_every_method_example_runs_and_prints_reports(capsys):
  block = next(b for b in _python_blocks() if "for method in" in b)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # collapse warnings are fine
    exec(compile(block, "README.md", "exec"), {})  # pylint: disable=exec-used
  out = capsys.readouterr().out
  for method in ["sbp", "magnitude", "random", "grasp", "synflow"]:
    assert re.search(rf"^{method} 0\.\d+$", out, re.M), method
  # One per-layer table per method, each ending with the global 10% density.
  assert out.count("| **total** |") == 5
  assert out.count("| 0.1000 |") >= 5


def test_setup_commands_match_ci():
  ci = (REPO / ".ci" / "run").read_text()
  test_cmd = 'python3 -m pip install -e ".[test]" && python3 -m pytest -q'
  assert test_cmd in README
  assert test_cmd in ci
  assert "python3 -m pip install -e . && python3 -m sbp_tf.demo" in README


def test_every_committed_result_is_linked_with_the_command_that_made_it():
  results = sorted((REPO / "docs" / "results").glob("*.md"))
  assert results, "docs/results holds no tables"
  for md in results:
    assert f"(docs/results/{md.name})" in README, f"{md.name} not linked"
    cmd = re.search(r"^- Command: `(.+?)`$", md.read_text(), re.M)
    if cmd:  # reproduce tables state their command; the README repeats it
      assert cmd.group(1) in README, (md.name, cmd.group(1))
  assert "python tools/benchmark.py" in README
