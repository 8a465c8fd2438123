"""Every binary's --help shows its purpose and its key flags, exit status 0,
run from another folder; errors are one line unless a traceback is asked."""

import pytest

from sbp_tf import cli
from sbp_tf import cli_help

import user_testlib

# binary -> (a phrase of its purpose, flags its help must list)
BINARIES = {
    "sbp_tf.train": ("Train one experiment", (
        "config", "workdir", "strategy", "overwrite", "tpu", "verbose",
        "verbosity")),
    "sbp_tf.tune": ("Hyperparameter search", (
        "config", "workdir", "strategy", "overwrite", "tpu", "tuner",
        "verbosity")),
    "sbp_tf.demo": ("the paper's story at extreme sparsity", (
        "dataset", "data_dir", "download", "epochs", "test_examples",
        "verbosity")),
    "sbp_tf.reproduce": ("Reproduce the paper's tables", (
        "experiment", "scale", "seeds", "workdir", "out_dir", "verbosity")),
    "sbp_tf.benchmark": ("Benchmark of pruning", (
        "quick", "sections", "out_dir", "verbosity")),
}


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(BINARIES))
def test_help_shows_purpose_and_key_flags_and_exits_0(module, tmp_path):
  out = user_testlib.run(["-m", module, "--help"], cwd=tmp_path, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  purpose, names = BINARIES[module]
  assert purpose in out.stdout.split("Flags:")[0]
  flags_part = out.stdout.split("\nFlags:\n")[1]
  for name in names:
    assert f"\n  --{name}" in "\n" + flags_part, (name, flags_part)
  assert "test_tmpdir" not in out.stdout  # absl's testing flags: --helpfull
  assert len(out.stdout.splitlines()) < 120  # a screen or two
  assert user_testlib.tf_log_lines(out.stderr) == []


def test_help_is_asked_by_every_usual_spelling_before_a_double_dash():
  for arg in ("--help", "-h", "--helpshort", "-?"):
    assert cli_help.wants_help(["prog", "--config=x", arg])
  assert not cli_help.wants_help(["prog", "--", "--help"])
  assert not cli_help.wants_help(["prog", "--helpfull"])  # absl's full list


def test_tracebacks_are_opt_in(monkeypatch, capsys):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  assert not cli.wants_traceback()
  for asked, shown in (("0", False), ("1", True)):
    monkeypatch.setenv(cli.TRACEBACK_ENV, asked)
    with pytest.raises(SystemExit) as e:
      try:
        raise KeyError("inner cause")
      except KeyError:
        cli.fail("it broke. Fix: do this.")
    assert str(e.value) == "[sbp_tf] error: it broke. Fix: do this."
    err = capsys.readouterr().err
    assert ("Traceback" in err and "inner cause" in err) == shown, err


@pytest.mark.slow
@pytest.mark.parametrize("args,want", [
    (["sbp_tf.reproduce", "--experiment=table7", "--workdir=w"],
     "unknown experiment 'table7'. Fix: "),
    (["sbp_tf.benchmark", "--sections=nope", "--out_dir=o"],
     "Unknown section(s) ['nope']. Fix: choose from saliency, "),
])
def test_tool_mistakes_are_one_line_errors(args, want, tmp_path):
  out = user_testlib.run(["-m", *args], cwd=tmp_path, timeout=120)
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr[-2000:]
  assert lines[0].startswith(f"[sbp_tf] error: {want}"), lines[0]
  assert not any(tmp_path.iterdir())  # nothing written
