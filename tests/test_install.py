"""The wheel (setup.py) carries what its commands need: built from this
checkout, installed non-editable into a fresh venv, run from another folder."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import user_testlib

REPO = user_testlib.REPO
# What setup.py reads: the package, the folders it bundles, the README.
_SOURCES = ("setup.py", "README.md", "sbp_tf", "configs", "tools")
_TINY = ["--config.model.options.width=16", "--config.model.options.depth=2",
         "--config.dataset.limit_train=256", "--config.dataset.limit_test=128",
         "--config.train.batch_size=64", "--config.train.epochs=1",
         "--strategy=default"]


def _build_wheel(tmp_path):
  """A wheel of a copy of the checkout (the build writes nothing here)."""
  src = tmp_path / "src"
  src.mkdir()
  for name in _SOURCES:
    if (REPO / name).is_dir():
      shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns(
          "__pycache__", "*.pyc", "_bundle"))
    else:
      shutil.copy(REPO / name, src / name)
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                  "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                  str(src)], check=True, capture_output=True, timeout=300)
  return next((tmp_path / "dist").glob("sbp_tf-*.whl"))


def _venv_with(wheel, tmp_path):
  """A fresh venv (the installed stack visible) holding only ``wheel``."""
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                  "--system-site-packages", str(venv)], check=True,
                 timeout=120)
  subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install",
                  "--no-deps", "--force-reinstall", "-q", str(wheel)],
                 check=True, capture_output=True, timeout=300)
  return venv / "bin"


def _run(bin_dir, cmd, cwd, **extra):
  env = user_testlib.user_env()
  del env["PYTHONPATH"]  # the installed package, not this checkout
  env.pop("SBP_DATA_DIR", None)
  env.update(extra)
  env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
  return subprocess.run([str(bin_dir / cmd[0]), *cmd[1:]], env=env, cwd=cwd,
                        capture_output=True, text=True, timeout=600)


def _assert_help(out, *flag_names):
  assert out.returncode == 0, out.stderr[-2000:]
  flags_part = out.stdout.split("\nFlags:\n")[1]
  for name in flag_names:
    assert f"\n  --{name}" in "\n" + flags_part, (name, out.stdout)


@pytest.mark.slow
def test_installed_wheel_runs_the_documented_commands_from_elsewhere(
    tmp_path, shared_data):
  bin_dir = _venv_with(_build_wheel(tmp_path), tmp_path)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  out = _run(bin_dir, ["python", "-c", "import sbp_tf; print(sbp_tf.__file__)"],
             elsewhere)
  assert out.stdout.startswith(str(tmp_path / "venv")), out.stdout

  _assert_help(_run(bin_dir, ["sbp-train", "--help"], elsewhere), "config",
               "workdir", "strategy", "overwrite", "tpu", "verbosity")
  _assert_help(_run(bin_dir, ["sbp-demo", "--help"], elsewhere), "dataset",
               "data_dir", "download", "epochs", "verbosity")
  _assert_help(_run(bin_dir, ["sbp-reproduce", "--help"], elsewhere),
               "experiment", "scale", "workdir", "out_dir", "verbosity")

  # A config by name, read from the wheel's copy of configs/.
  out = _run(bin_dir, ["sbp-train", "--config=cpu_fashion_mnist_ffnn",
                       f"--workdir={tmp_path / 'run'}", *_TINY], elsewhere,
             SBP_DATA_DIR=str(shared_data))
  assert out.returncode == 0, out.stderr[-3000:]
  metrics = json.loads(out.stdout[out.stdout.index("\n{") + 1:])
  assert 0.0 <= metrics["test_accuracy"] <= 1.0
  assert user_testlib.tf_log_lines(out.stderr) == [], out.stderr[-3000:]

  # Mistakes: one line each, no traceback, no doomed tfds download.
  out = _run(bin_dir, ["sbp-train", "--config=nope", "--workdir=w"], elsewhere)
  assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
  assert "or one of the names cifar100_resnet104_stable, " in out.stderr
  out = _run(bin_dir, ["sbp-demo", "--dataset=fashion_mnist"], elsewhere,
             HOME=str(tmp_path), TFDS_DATA_DIR=str(tmp_path / "tfds"))
  assert out.returncode == 1, out.stderr[-3000:]
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  assert lines[0].startswith("[sbp_tf] error: dataset 'fashion_mnist'")
  assert "Fix: pass --data_dir=" in lines[0] and "--download" in lines[0]
  assert "Downloading" not in out.stdout + out.stderr
