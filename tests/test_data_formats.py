"""sbp_tf.data on small generated files of every supported local format."""

import gzip
import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from sbp_tf import data
from sbp_tf.data import formats


def write_idx(path, array):
  """IDX writer: 0, 0, type 0x08 (uint8), rank, big-endian dims, data."""
  array = np.ascontiguousarray(array, np.uint8)
  head = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(head + array.tobytes())


def _denorm(x, meta):
  return (x * np.array(meta.std) + np.array(meta.mean)) * 255


def _plain(name, split, **kw):
  ds, meta = data.load(name, split, batch_size=10_000, shuffle=False,
                       augment=False, **kw)
  xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
  return np.concatenate(xs), np.concatenate(ys), meta


@pytest.mark.parametrize("ext", [".gz", ""])
def test_idx_mnist_roundtrip(tmp_path, ext):
  rng = np.random.default_rng(0)
  folder = tmp_path / "mnist"
  folder.mkdir()
  want = {}
  for prefix, n in (("train", 30), ("t10k", 12)):
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
    want[prefix] = (x, y)
  for split, prefix in (("train", "train"), ("test", "t10k")):
    x, y, meta = _plain("mnist", split, data_dir=tmp_path, cache_dir=tmp_path / "c")
    assert meta.source == f"idx {folder}"
    np.testing.assert_allclose(_denorm(x, meta)[..., 0], want[prefix][0], atol=1e-3)
    np.testing.assert_array_equal(y, want[prefix][1])


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
  (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\0" * 8)
  with pytest.raises(ValueError, match="not an IDX file"):
    formats.read_idx(tmp_path / "bad")
  write_idx(tmp_path / "ok", np.zeros((3, 2), np.uint8))
  raw = (tmp_path / "ok").read_bytes()
  (tmp_path / "short").write_bytes(raw[:-1])
  with pytest.raises(ValueError, match="truncated"):
    formats.read_idx(tmp_path / "short")


def _cifar_batch(rng, n, label_key, num_classes):
  d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
       label_key: list(rng.integers(0, num_classes, n))}
  if label_key == b"fine_labels":
    d[b"coarse_labels"] = list(rng.integers(0, 20, n))  # must be ignored
  return d


def _dump(path, obj):
  with open(path, "wb") as f:
    pickle.dump(obj, f)


def test_cifar10_pickle_folder(tmp_path):
  rng = np.random.default_rng(1)
  folder = tmp_path / "cifar-10-batches-py"
  folder.mkdir()
  batches = [_cifar_batch(rng, 3, b"labels", 10) for _ in range(5)]
  for i, b in enumerate(batches):
    _dump(folder / f"data_batch_{i + 1}", b)
  _dump(folder / "test_batch", _cifar_batch(rng, 4, b"labels", 10))
  _dump(folder / "batches.meta",
        {b"label_names": [f"c{i}".encode() for i in range(10)]})
  x, y, meta = _plain("cifar10", "train", data_dir=tmp_path,
                      cache_dir=tmp_path / "c")
  assert x.shape == (15, 32, 32, 3) and meta.class_names[3] == "c3"
  raw = np.concatenate([b[b"data"] for b in batches])
  # Channel-major rows: pixel (r, c) of channel ch is data[ch*1024 + r*32 + c].
  r, c, ch = 5, 17, 2
  np.testing.assert_allclose(_denorm(x, meta)[:, r, c, ch],
                             raw[:, ch * 1024 + r * 32 + c], atol=1e-3)
  np.testing.assert_array_equal(y, sum((b[b"labels"] for b in batches), []))
  _, yt, _ = _plain("cifar10", "test", data_dir=tmp_path, cache_dir=tmp_path / "c")
  assert len(yt) == 4


def test_cifar100_pickle_uses_fine_labels(tmp_path):
  rng = np.random.default_rng(2)
  folder = tmp_path / "cifar-100-python"
  folder.mkdir()
  train = _cifar_batch(rng, 6, b"fine_labels", 100)
  _dump(folder / "train", train)
  _dump(folder / "test", _cifar_batch(rng, 2, b"fine_labels", 100))
  x, y, meta = _plain("cifar100", "train", data_dir=folder,
                      cache_dir=tmp_path / "c")  # data_dir = the folder itself
  np.testing.assert_array_equal(y, train[b"fine_labels"])
  assert meta.num_classes == 100 and meta.class_names[0] == "apple"
  np.testing.assert_allclose(_denorm(x, meta)[:, 0, 0, 1], train[b"data"][:, 1024],
                             atol=1e-3)


CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
           "horse", "ship", "truck")


def _png_tree(root, rng, per_class):
  """train/test/<class>/*.png of random 32x32 images; returns split arrays."""
  want = {}
  for split, n in per_class.items():
    xs, ys = [], []
    for label, cls in enumerate(CLASSES):
      d = root / split / cls
      d.mkdir(parents=True)
      for i in range(n):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(d / f"{i:04d}.png")
        xs.append(img)
        ys.append(label)
    want[split] = (np.stack(xs), np.array(ys))
  return want


def _pack(src_root, archive):
  if archive.name.endswith(".zip"):
    with zipfile.ZipFile(archive, "w") as z:
      for p in sorted(src_root.rglob("*")):
        z.write(p, "cifar10/" + str(p.relative_to(src_root)))
  else:
    mode = "w:xz" if archive.name.endswith(".xz") else "w:gz"
    with tarfile.open(archive, mode) as t:
      t.add(src_root / "train", "train")
      t.add(src_root / "test", "test")


@pytest.mark.parametrize("archive_name", ["cifar10-jpeg.tar.xz", "cifar10.tar.gz",
                                          "cifar10.zip"])
def test_image_folder_archives(tmp_path, archive_name):
  want = _png_tree(tmp_path / "tree", np.random.default_rng(3),
                   {"train": 2, "test": 1})
  store = tmp_path / "store"
  store.mkdir()
  _pack(tmp_path / "tree", store / archive_name)
  cache_dir = tmp_path / "cache"
  for split in ("train", "test"):
    x, y, meta = _plain("cifar10", split, data_dir=store, cache_dir=cache_dir)
    assert meta.source == f"archive {store / archive_name}"
    np.testing.assert_allclose(_denorm(x, meta), want[split][0], atol=1e-3)
    np.testing.assert_array_equal(y, want[split][1])
  assert len(list((cache_dir / "extracted").iterdir())) == 1
  assert len(list((cache_dir / "arrays").glob("*.npz"))) == 2


def test_extracted_tree_folder_and_class_count_check(tmp_path):
  want = _png_tree(tmp_path / "cifar10", np.random.default_rng(4),
                   {"train": 1, "test": 1})
  x, y, meta = _plain("cifar10", "test", data_dir=tmp_path,
                      cache_dir=tmp_path / "c")
  assert meta.source == f"tree {tmp_path / 'cifar10'}"
  np.testing.assert_allclose(_denorm(x, meta), want["test"][0], atol=1e-3)
  # A tree with the wrong number of classes is refused with the reason.
  (tmp_path / "cifar10" / "train" / "extra").mkdir()
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(
      tmp_path / "cifar10" / "train" / "extra" / "a.png")
  with pytest.raises(ValueError, match="has 11 classes but cifar10 has 10"):
    _plain("cifar10", "train", data_dir=tmp_path, cache_dir=tmp_path / "c2")


def test_tiny_imagenet_official_layout_zip(tmp_path):
  wnids = [f"n{i:08d}" for i in range(200)]
  root = tmp_path / "tree" / "tiny-imagenet-200"
  for i, w in enumerate(wnids):
    d = root / "train" / w / "images"
    d.mkdir(parents=True)
    # Class i is a flat colour (i, 255 - i, 7): JPEG keeps flat colours ~exact.
    Image.fromarray(np.full((64, 64, 3), (i, 255 - i, 7), np.uint8)).save(
        d / f"{w}_0.JPEG", quality=95)
  (root / "val" / "images").mkdir(parents=True)
  lines = []
  for j, cls in enumerate((5, 199, 0)):
    Image.fromarray(np.full((64, 64, 3), (cls, 255 - cls, 7), np.uint8)).save(
        root / "val" / "images" / f"val_{j}.JPEG", quality=95)
    lines.append(f"val_{j}.JPEG\t{wnids[cls]}\t0\t0\t63\t63")
  (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
  (root / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
  store = tmp_path / "store"
  store.mkdir()
  with zipfile.ZipFile(store / "tiny-imagenet-200.zip", "w") as z:
    for p in sorted((tmp_path / "tree").rglob("*")):
      z.write(p, str(p.relative_to(tmp_path / "tree")))
  x, y, meta = _plain("tiny_imagenet", "train", data_dir=store,
                      cache_dir=tmp_path / "c")
  assert x.shape == (200, 64, 64, 3) and meta.class_names[7] == wnids[7]
  np.testing.assert_array_equal(y, np.arange(200))
  np.testing.assert_allclose(_denorm(x, meta)[:, 10, 10, 0], np.arange(200), atol=3)
  xv, yv, _ = _plain("tiny_imagenet", "validation", data_dir=store,
                     cache_dir=tmp_path / "c")
  np.testing.assert_array_equal(yv, [5, 199, 0])


def test_imagenet_folder_train_and_eval_crops(tmp_path):
  rng = np.random.default_rng(5)
  for split in ("train", "val"):
    for k, (h, w) in enumerate([(300, 200), (180, 260)]):
      d = tmp_path / "imagenet2012" / split / f"n0{k}"
      d.mkdir(parents=True)
      buf = io.BytesIO()
      Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
          buf, format="JPEG")
      (d / "a.JPEG").write_bytes(buf.getvalue())
  for split in ("train", "test"):
    ds, meta = data.load("imagenet2012", split, batch_size=2, data_dir=tmp_path,
                         seed=0)
    x, y = next(iter(ds))
    assert x.shape == (2, 224, 224, 3) and meta.size == 2
    assert sorted(y.numpy().tolist()) == [0, 1]
  # Eval is deterministic: two passes give the same center crops.
  a = next(iter(ds))[0].numpy()
  b = next(iter(ds))[0].numpy()
  np.testing.assert_array_equal(a, b)
