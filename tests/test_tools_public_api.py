"""tools/ uses only sbp_tf's public API (checked on the source, with ``ast``).

Private, for a tool:

* a module or name starting with ``_`` anywhere in the path
  (``from sbp_tf import _env``, ``from sbp_tf.masking import _listing``);
* a submodule of a subpackage (``sbp_tf.pruning.threshold``,
  ``from sbp_tf.data import loader``): a tool uses what the subpackage's
  ``__init__`` exports (``from sbp_tf import pruning; pruning.select(...)``).

Public: ``sbp_tf`` itself, its top-level modules (``sbp_tf.compat``,
``sbp_tf.files``, ...) and subpackages (``sbp_tf.pruning``, ...) and the
names they define. Fix for a flagged line: import the subpackage and use its
export; where none exists, add one to the subpackage's ``__init__.py``.
"""

import ast
import pathlib
from typing import List

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sbp_tf"
# Directories of sbp_tf with an __init__.py: their submodules are private.
SUBPACKAGES = frozenset(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
TOOLS = sorted(REPO.glob("tools/**/*.py"))


def _is_submodule(subpackage: str, name: str) -> bool:
  """Whether ``sbp_tf.<subpackage>.<name>`` is a module or package file."""
  folder = PACKAGE / subpackage
  return (folder / f"{name}.py").exists() or (folder / name / "__init__.py"
                                              ).exists()


def exports(subpackage: str) -> frozenset:
  """The names ``sbp_tf/<subpackage>/__init__.py`` exports.

  Its ``__all__`` where it has one; else every top-level name it binds,
  except submodules it imports only to run them (``from sbp_tf.models
  import ffnn``). A name can be both: ``pruning.prune`` is the function
  ``from sbp_tf.pruning.prune import prune`` binds over the module.
  """
  tree = ast.parse((PACKAGE / subpackage / "__init__.py").read_text())
  bound = set()
  for node in tree.body:
    if isinstance(node, ast.Assign):
      for t in node.targets:
        if isinstance(t, ast.Name) and t.id == "__all__":
          return frozenset(ast.literal_eval(node.value))
        if isinstance(t, ast.Name):
          bound.add(t.id)
    elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
      bound.add(node.name)
    elif isinstance(node, ast.ImportFrom):
      for alias in node.names:
        if node.module == f"sbp_tf.{subpackage}" and alias.asname is None:
          continue  # a submodule imported for its side effects
        bound.add(alias.asname or alias.name)
  return frozenset(bound)


def _private_path(parts: List[str]) -> str:
  """Why the dotted path ``sbp_tf.<parts...>`` is private, or ''."""
  for part in parts:
    if part.startswith("_"):
      return f"private name {part!r}"
  if len(parts) >= 2 and parts[0] in SUBPACKAGES:
    return (f"submodule of the subpackage sbp_tf.{parts[0]}; use what "
            f"`from sbp_tf import {parts[0]}` exports")
  return ""


def violations(source: str, filename: str = "<source>") -> List[str]:
  """``file:line: import -- reason`` for each private sbp_tf import."""
  out = []
  for node in ast.walk(ast.parse(source, filename)):
    paths = []  # (dotted path below sbp_tf as parts, text)
    if isinstance(node, ast.Import):
      for alias in node.names:
        parts = alias.name.split(".")
        if parts[0] == "sbp_tf":
          paths.append((parts[1:], f"import {alias.name}"))
    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
      parts = node.module.split(".")
      if parts[0] != "sbp_tf":
        continue
      for alias in node.names:
        text = f"from {node.module} import {alias.name}"
        if alias.name.startswith("_"):
          paths.append(([*parts[1:], alias.name], text))
        elif (len(parts) == 2 and parts[1] in SUBPACKAGES
              and alias.name not in exports(parts[1])
              and _is_submodule(parts[1], alias.name)):
          # `from sbp_tf.pruning import threshold`: a module, not an export.
          paths.append(([parts[1], alias.name], text))
        else:
          paths.append((parts[1:], text))
    for parts, text in paths:
      why = _private_path(parts)
      if why:
        out.append((node.lineno, f"{filename}:{node.lineno}: {text} -- {why}"))
  return [text for _, text in sorted(out)]


def test_checker_flags_private_paths_and_passes_public_ones():
  src = "\n".join([
      "import sbp_tf",                                   # 1 ok
      "from sbp_tf import _env",                         # 2 private name
      "from sbp_tf import pruning, compat, files",       # 3 ok
      "from sbp_tf.compat import keras, tf",             # 4 ok
      "from sbp_tf.pruning import prune, default_loss",  # 5 ok: exports
      "from sbp_tf.pruning import threshold",            # 6 submodule
      "from sbp_tf.data.loader import load",             # 7 submodule
      "import sbp_tf.pruning.state",                     # 8 submodule
      "from sbp_tf.masking import _listing",             # 9 private name
      "from sbp_tf.models._common import x",             # 10 private module
      "import sbp_tf.pruning",                           # 11 ok
      "def f():",
      "  from sbp_tf.pruning import scores as s",        # 13 nested, flagged
      "from tools import bench",                         # 14 not sbp_tf
  ])
  got = violations(src, "t.py")
  assert [int(v.split(":")[1]) for v in got] == [2, 6, 7, 8, 9, 10, 13], got
  assert "t.py:6: from sbp_tf.pruning import threshold -- submodule" in got[1]


def test_subpackages_and_their_exports_are_found():
  assert {"pruning", "data", "models", "tfmot", "training"} <= SUBPACKAGES
  assert {"prune", "default_loss", "Masks"} <= exports("pruning")
  assert "load" in exports("data") and "loader" not in exports("data")
  assert "build" in exports("models") and "ffnn" not in exports("models")


@pytest.mark.parametrize("path", TOOLS,
                         ids=[str(p.relative_to(REPO)) for p in TOOLS])
def test_tool_imports_only_public_sbp_tf(path):
  rel = str(path.relative_to(REPO))
  bad = violations(path.read_text(encoding="utf-8"), rel)
  assert not bad, ("private sbp_tf imports (use the public API; see this "
                   "test's docstring):\n" + "\n".join(bad))
