"""Keeps BUILD honest: every module, binary and test file has a Bazel target.

BUILD files are Starlark, a subset of Python; this test evaluates ours with
stand-ins for the rules and ``glob`` so it runs without Bazel.
"""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _glob(patterns, exclude=()):
  out = set()
  for pattern in patterns:
    out.update(str(p.relative_to(REPO)) for p in REPO.glob(pattern)
               if p.is_file())
  for pattern in exclude:
    out.difference_update(str(p.relative_to(REPO)) for p in REPO.glob(pattern))
  return sorted(out)


def _evaluate_build():
  rules = []

  def rule(kind):
    def record(**kwargs):
      rules.append((kind, kwargs))
    return record

  env = {"glob": _glob, "package": lambda **kw: None,
         "py_library": rule("py_library"), "py_binary": rule("py_binary"),
         "py_test": rule("py_test")}
  exec(compile((REPO / "BUILD").read_text(), "BUILD", "exec"), env)  # pylint: disable=exec-used
  return rules


def _covered(rules):
  files = set()
  for _, kw in rules:
    files.update(kw.get("srcs", []))
    files.update(kw.get("data", []))
  return files


def test_every_python_file_belongs_to_a_target():
  covered = _covered(_evaluate_build())
  wanted = set(_glob(["sbp_tf/**/*.py", "tests/*.py", "tools/*.py",
                      "configs/*.py"]))
  missing = sorted(wanted - covered)
  assert not missing, f"files without a Bazel target: {missing}"


def test_every_test_file_has_its_own_py_test():
  tests = {kw["args"][0][len("$(location "):-1]
           for kind, kw in _evaluate_build() if kind == "py_test"}
  assert tests == set(_glob(["tests/test_*.py"]))


def test_binaries_point_at_existing_mains_with_absl_entry():
  binaries = [kw for kind, kw in _evaluate_build() if kind == "py_binary"]
  assert {b["name"] for b in binaries} >= {"train", "tune", "reproduce",
                                          "benchmark", "demo"}
  for b in binaries:
    main = REPO / b["main"]
    assert main.exists(), f"{b['name']}: {main} missing"
    assert "app.run" in main.read_text(), f"{main} has no absl entry point"


def test_target_names_are_unique():
  names = [kw["name"] for _, kw in _evaluate_build()]
  dupes = sorted({n for n in names if names.count(n) > 1})
  assert not dupes, dupes


@pytest.mark.parametrize("shim", ["rules_cc_shim", "rules_java_shim",
                                  "coverage_tools_shim"])
def test_workspace_declares_existing_offline_shims(shim):
  workspace = (REPO / "WORKSPACE").read_text()
  assert f'path = "third_party/bazel/{shim}"' in workspace
  assert (REPO / "third_party" / "bazel" / shim / "WORKSPACE").exists()
