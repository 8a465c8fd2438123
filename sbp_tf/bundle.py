"""Where the repository's ``configs/`` and ``tools/`` are, clone or wheel.

The repository's top-level ``configs/`` (one experiment per file) and
``tools/`` (reproduction of the paper's tables, the benchmark) are their only
source. A wheel carries a copy of both under ``sbp_tf/_bundle/`` (setup.py
copies them at build time), so the binaries find a config by name and
``python -m sbp_tf.reproduce`` runs from an installed package; in a clone (or
an editable install) the clone's own folders are used.

Usage::

    bundle.config_names()                    # ['cifar100_resnet104_stable', ...]
    bundle.find_config("cpu_fashion_mnist_ffnn")       # path of the file
    bundle.find_config("configs/cpu_fashion_mnist_ffnn.py")   # the same
    bundle.run_tool("reproduce")              # tools/reproduce.py's program
"""

import functools
import importlib
import pathlib
import re
import sys
from typing import Callable, List, Optional

_PACKAGE = pathlib.Path(__file__).resolve().parent
# A value that names a config rather than a path: "NAME", "NAME.py" or
# "configs/NAME.py" (relative, as the docs write it).
_NAME = re.compile(r"^(?:configs[/\\])?(\w+)(?:\.py)?$")


def root() -> pathlib.Path:
  """The folder holding ``configs/`` and ``tools/``: the clone's root when
  sbp_tf is imported from a checkout, else the wheel's ``sbp_tf/_bundle``.

  Raises:
    FileNotFoundError: neither exists (a wheel built without them).
  """
  for candidate in (_PACKAGE.parent, _PACKAGE / "_bundle"):
    if ((candidate / "configs").is_dir() and
        (candidate / "tools" / "reproduce.py").is_file()):
      return candidate
  raise FileNotFoundError(
      f"sbp_tf at {_PACKAGE} has no configs/ and tools/ beside it or in "
      "sbp_tf/_bundle. Fix: reinstall from a wheel built by setup.py, or run "
      "from a clone of the repository.")


def config_names() -> List[str]:
  """The names of the experiment configs (``configs/<name>.py``), sorted."""
  return sorted(p.stem for p in (root() / "configs").glob("*.py")
                if not p.stem.startswith("_"))


def find_config(value: str) -> Optional[pathlib.Path]:
  """The config file ``value`` names, or None.

  ``value`` is an existing file (returned as given), or a config name in any
  of the forms ``NAME``, ``NAME.py``, ``configs/NAME.py`` (the bundled file).
  """
  path = pathlib.Path(value)
  if path.is_file():
    return path
  m = _NAME.match(value)
  if m is None:
    return None
  bundled = root() / "configs" / f"{m.group(1)}.py"
  return bundled if bundled.is_file() else None


def run_tool(name: str) -> None:
  """Runs ``tools/<name>.py``'s program (its ``run_main``) with this
  process's command line, from the clone or the wheel's copy."""
  folder = str(root())
  if folder not in sys.path:
    # tools/ modules import each other as ``tools.<module>``.
    sys.path.insert(0, folder)
  importlib.import_module(f"tools.{name}").run_main()


def tool_main(name: str) -> Callable[[], None]:
  """The console-script entry point that runs ``tools/<name>.py``."""
  return functools.partial(run_tool, name)
