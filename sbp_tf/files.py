"""Atomic file writes: a kill never leaves half a file.

Every writer goes through :func:`write_bytes`: the content is written to a
temporary file in the destination folder, which is then renamed onto the
destination (``os.replace`` is atomic on POSIX and Windows), with the mode
``open()`` would have given a new file (the umask is honoured).

Usage::

    from sbp_tf import files
    files.write_json("/tmp/run/results.json", {"test_accuracy": 0.91})
    files.write_text("/tmp/run/report.md", "| a |\\n")
    with files.atomic("/tmp/run/masks.npz") as f:   # any binary writer
      np.savez_compressed(f, **arrays)
"""

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any, Iterator


def _umask_mode() -> int:
  """``0o666 & ~umask``: the mode ``open()`` would give a new file."""
  mask = os.umask(0)
  os.umask(mask)
  return 0o666 & ~mask


@contextlib.contextmanager
def atomic(path, mode: str = "wb", **open_kwargs) -> Iterator[Any]:
  """Yields a file object whose content replaces ``path`` only on success.

  On any exception the temporary file is removed and ``path`` is unchanged.
  ``open_kwargs`` go to ``open`` (e.g. ``newline=""`` for ``csv``).
  """
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, mode, **open_kwargs) as f:
      yield f
    os.chmod(tmp, _umask_mode())  # mkstemp creates 0600 files
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def write_bytes(path, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically."""
  with atomic(path, "wb") as f:
    f.write(data)


def write_text(path, text: str) -> None:
  """Writes ``text`` to ``path`` atomically."""
  with atomic(path, "w") as f:
    f.write(text)


def _jsonable(x):
  """NumPy scalars as floats; anything else JSON cannot encode as a string."""
  try:
    return float(x)
  except (TypeError, ValueError):
    return str(x)


def to_json(obj, indent: int = 1) -> str:
  """``obj`` as sorted JSON (NumPy scalars as floats), ending in a newline."""
  return json.dumps(obj, indent=indent, sort_keys=True,
                    default=_jsonable) + "\n"


def write_json(path, obj, indent: int = 1) -> None:
  """Writes ``obj`` as JSON (:func:`to_json`) to ``path`` atomically."""
  write_text(path, to_json(obj, indent))
