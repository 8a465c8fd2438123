"""The on-disk cache: extracted archives and decoded arrays, written atomically.

Everything is first written under a temporary name in the same folder and then
renamed into place, so an interrupted run never leaves a partial entry that a
later run would trust. Entries are keyed by the identity of their source file
(absolute path, size, mtime), so a replaced archive is extracted again.

Usage::

    root = cache_root(None)                    # $SBP_CACHE_DIR or ~/.cache/sbp_tf
    tree = extracted(archive_path, root)       # extracts once, then reuses
"""

import hashlib
import os
import pathlib
import shutil
import tarfile
import zipfile

import numpy as np

from sbp_tf import files

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip")
_TMP_PREFIX = ".tmp-"


def cache_root(cache_dir=None):
  """The cache folder: ``cache_dir``, else $SBP_CACHE_DIR, else ~/.cache/sbp_tf."""
  root = cache_dir or os.environ.get("SBP_CACHE_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "sbp_tf")
  return pathlib.Path(root).expanduser().resolve()


def identity(*paths):
  """A short hex key of the paths' (absolute path, size, mtime_ns)."""
  h = hashlib.sha1()
  for p in paths:
    p = pathlib.Path(p).resolve()
    st = p.stat()
    h.update(f"{p}|{st.st_size}|{st.st_mtime_ns};".encode())
  return h.hexdigest()[:16]


def archive_stem(path):
  """'cifar10-jpeg' for 'cifar10-jpeg.tar.xz'; None if not an archive name."""
  name = pathlib.Path(path).name
  for suffix in ARCHIVE_SUFFIXES:
    if name.lower().endswith(suffix):
      return name[:-len(suffix)]
  return None


def _extract_into(archive, dest):
  """Unpacks ``archive`` into the existing folder ``dest`` (safe paths only)."""
  if str(archive).lower().endswith(".zip"):
    with zipfile.ZipFile(archive) as z:
      for member in z.namelist():
        # Refuse absolute paths and '..' that would escape the cache folder.
        if member.startswith("/") or ".." in pathlib.PurePosixPath(member).parts:
          raise ValueError(f"unsafe path {member!r} in {archive}; refusing to "
                           "extract it. Repack the archive with relative paths.")
      z.extractall(dest)
  else:
    with tarfile.open(archive) as t:
      t.extractall(dest, filter="data")


def _remove_stale(folder, key):
  """Deletes temp entries for ``key`` left by processes that no longer run."""
  for tmp in folder.glob(f"{_TMP_PREFIX}{key}-*"):
    try:
      pid = int(tmp.name[len(_TMP_PREFIX):].split("-")[1])
      os.kill(pid, 0)
      continue  # its writer is still running
    except (ValueError, IndexError, ProcessLookupError):
      pass
    except PermissionError:
      continue
    if tmp.is_dir():
      shutil.rmtree(tmp, ignore_errors=True)
    else:
      tmp.unlink(missing_ok=True)


def _tmp_name(key):
  return f"{_TMP_PREFIX}{key}-{os.getpid()}-{os.urandom(4).hex()}"


def extracted(archive, root):
  """Extracts ``archive`` once into ``root``/extracted and returns that folder.

  The archive is unpacked into a temporary folder that is renamed into place
  only when complete; on any error or interrupt the temporary folder is removed,
  so the cache never holds a partial tree.

  Args:
    archive: path of a .tar.xz/.tar.gz/.tgz/.tar.bz2/.tar/.zip file.
    root: the cache folder (see cache_root).

  Returns:
    pathlib.Path of the extracted tree.

  Usage::

      tree = extracted("/data/cifar10-jpeg.tar.xz", cache_root(None))
  """
  archive = pathlib.Path(archive).resolve()
  key = identity(archive)
  folder = pathlib.Path(root) / "extracted"
  final = folder / f"{archive_stem(archive) or archive.name}-{key}"
  if final.is_dir():
    return final
  folder.mkdir(parents=True, exist_ok=True)
  _remove_stale(folder, key)
  tmp = folder / _tmp_name(key)
  tmp.mkdir()
  try:
    _extract_into(archive, tmp)
    try:
      os.rename(tmp, final)
    except OSError:
      if not final.is_dir():  # lost a race to another process: keep theirs
        raise
      shutil.rmtree(tmp, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def array_path(root, name, key, split):
  """Where the decoded arrays of (dataset, source key, split) are cached."""
  return pathlib.Path(root) / "arrays" / f"{name}-{key}-{split}.npz"


def save_arrays(path, **arrays):
  """Writes an .npz atomically (sbp_tf.files: temp file + rename)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with files.atomic(path, "wb") as f:
    np.savez(f, **arrays)


def load_arrays(path):
  """Reads a cached .npz into a dict of arrays, or None if absent/corrupt."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError):
    return None  # unreadable: rebuild it
