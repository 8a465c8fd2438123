"""sbp_tf.bundle: configs by name from any folder; the tools' programs."""

import pytest

from sbp_tf import bundle
from sbp_tf import cli

from user_testlib import REPO


def test_config_names_are_the_repository_configs():
  names = bundle.config_names()
  assert names == sorted(p.stem for p in (REPO / "configs").glob("*.py"))
  assert "cpu_fashion_mnist_ffnn" in names and len(names) >= 20


@pytest.mark.parametrize("form", [
    "cpu_fashion_mnist_ffnn", "cpu_fashion_mnist_ffnn.py",
    "configs/cpu_fashion_mnist_ffnn.py"])
def test_every_documented_form_finds_the_file_from_another_folder(
    form, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # no configs/ here
  found = bundle.find_config(form)
  assert found == REPO / "configs" / "cpu_fashion_mnist_ffnn.py"
  argv = cli._config_by_name(["sbp-train", f"--config={form}", "--x=1"], form)
  assert argv == ["sbp-train", f"--config={found}", "--x=1"]
  argv = cli._config_by_name(["sbp-train", "--config", f"{form}:a"], f"{form}:a")
  assert argv == ["sbp-train", "--config", f"{found}:a"]


def test_an_existing_file_wins_and_unknown_names_list_the_choices(tmp_path,
                                                                  monkeypatch):
  mine = tmp_path / "configs" / "cpu_fashion_mnist_ffnn.py"
  mine.parent.mkdir()
  mine.write_text("def get_config():\n  return None\n")
  monkeypatch.chdir(tmp_path)
  assert bundle.find_config("configs/cpu_fashion_mnist_ffnn.py") == (
      mine.relative_to(tmp_path))
  assert bundle.find_config("no_such_config") is None
  assert bundle.find_config("../configs/cpu_fashion_mnist_ffnn.py") is None
  msg = cli.check_config_file("no_such_config")
  assert msg.startswith("config file 'no_such_config' does not exist and "
                        "names no config. Fix: pass a config file or one of "
                        "the names cifar100_resnet104_stable, ")
  assert all(name in msg for name in bundle.config_names())
  assert "\n" not in msg


def test_root_is_the_checkout_here():
  assert bundle.root() == REPO
