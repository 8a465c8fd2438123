"""The data cache: extract once, atomic writes, no partial entries."""

import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from sbp_tf import data
from sbp_tf.data import cache


def _archive(tmp_path, n=1):
  src = tmp_path / "src"
  for split in ("train", "test"):
    for cls in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                "horse", "ship", "truck"):
      d = src / split / cls
      d.mkdir(parents=True)
      for i in range(n):
        Image.fromarray(np.full((32, 32, 3), i * 40, np.uint8)).save(d / f"{i}.png")
  store = tmp_path / "store"
  store.mkdir()
  with tarfile.open(store / "cifar10.tar.gz", "w:gz") as t:
    t.add(src / "train", "train")
    t.add(src / "test", "test")
  return store


def test_cache_root_precedence(monkeypatch, tmp_path):
  monkeypatch.setenv("SBP_CACHE_DIR", str(tmp_path / "env"))
  assert cache.cache_root(None) == (tmp_path / "env").resolve()
  assert cache.cache_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
  monkeypatch.delenv("SBP_CACHE_DIR")
  assert cache.cache_root(None) == (
      tmp_path.home() / ".cache" / "sbp_tf").resolve()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_extraction_leaves_no_partial_cache(tmp_path, monkeypatch,
                                                        error):
  store = _archive(tmp_path)
  cache_dir = tmp_path / "cache"
  real = tarfile.TarFile.extract

  calls = []

  def flaky(self, member, *a, **k):
    # Let a few members land on disk, then fail mid-archive.
    calls.append(member)
    if len(calls) > 5:
      raise error("interrupted")
    return real(self, member, *a, **k)

  monkeypatch.setattr(tarfile.TarFile, "extract", flaky)
  # extractall calls extract per member in 3.11 only via _extract_one; patch it
  # too so the failure really happens inside extraction.
  if hasattr(tarfile.TarFile, "_extract_one"):
    real_one = tarfile.TarFile._extract_one

    def flaky_one(self, member, *a, **k):
      calls.append(member)
      if len(calls) > 5:
        raise error("interrupted")
      return real_one(self, member, *a, **k)

    monkeypatch.setattr(tarfile.TarFile, "_extract_one", flaky_one)
  with pytest.raises(error, match="interrupted"):
    data.load("cifar10", "train", data_dir=store, cache_dir=cache_dir)
  assert len(calls) > 5  # the failure happened mid-extraction
  leftovers = [str(p.relative_to(cache_dir)) for p in cache_dir.rglob("*")
               if p.is_file()]
  assert leftovers == []
  assert list((cache_dir / "extracted").iterdir()) == []
  monkeypatch.undo()
  ds, meta = data.load("cifar10", "train", data_dir=store, cache_dir=cache_dir)
  assert meta.size == 10 and len(list((cache_dir / "extracted").iterdir())) == 1


def test_extract_once_then_reextract_when_archive_changes(tmp_path, monkeypatch):
  store = _archive(tmp_path)
  cache_dir = tmp_path / "cache"
  count = []
  real = cache._extract_into
  monkeypatch.setattr(cache, "_extract_into",
                      lambda a, d: (count.append(a), real(a, d)))
  data.load("cifar10", "train", data_dir=store, cache_dir=cache_dir)
  data.load("cifar10", "test", data_dir=store, cache_dir=cache_dir)
  data.load("cifar10", "train", data_dir=store, cache_dir=cache_dir)
  assert len(count) == 1
  # A replaced archive (new mtime) gets a new cache key: extracted again.
  st = os.stat(store / "cifar10.tar.gz")
  os.utime(store / "cifar10.tar.gz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
  data.load("cifar10", "train", data_dir=store, cache_dir=cache_dir)
  assert len(count) == 2


def test_stale_temp_dir_of_dead_process_is_removed(tmp_path):
  store = _archive(tmp_path)
  archive = store / "cifar10.tar.gz"
  key = cache.identity(archive)
  stale = tmp_path / "cache" / "extracted" / f".tmp-{key}-999999999-abcd"
  stale.mkdir(parents=True)
  (stale / "half.png").write_bytes(b"x")
  tree = cache.extracted(archive, tmp_path / "cache")
  assert not stale.exists() and (tree / "train" / "cat" / "0.png").is_file()


def test_save_arrays_is_atomic(tmp_path, monkeypatch):
  target = tmp_path / "arrays" / "a.npz"

  def fail(*a, **k):
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "savez", fail)
  with pytest.raises(KeyboardInterrupt):
    cache.save_arrays(target, x=np.zeros(3))
  assert list(target.parent.iterdir()) == []
  monkeypatch.undo()
  cache.save_arrays(target, x=np.arange(3))
  np.testing.assert_array_equal(cache.load_arrays(target)["x"], np.arange(3))
  target.write_bytes(b"garbage")  # a corrupt entry is treated as a miss
  assert cache.load_arrays(target) is None
