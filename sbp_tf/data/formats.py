"""Readers for the formats people keep datasets in, returning uint8 arrays.

* IDX (MNIST, Fashion-MNIST), plain or ``.gz``;
* CIFAR python pickles (``cifar-10-batches-py``, ``cifar-100-python``);
* image-folder trees ``<split>/<class>/*.{png,jpg,jpeg}``, including the
  official Tiny ImageNet layout (``train/<wnid>/images/*.JPEG`` and
  ``val/images`` + ``val/val_annotations.txt``).

Usage::

    x = read_idx("fashion-mnist/train-images-idx3-ubyte.gz")   # (60000, 28, 28)
    x, y, classes = read_cifar_pickle("cifar-10-batches-py", "train")
"""

import concurrent.futures
import gzip
import os
import pathlib
import pickle

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_DIRS = {"train": ("train", "training"),
              "test": ("test", "val", "validation", "testing")}
# IDX element types by their type byte (the IDX spec, as used by MNIST).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
               0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
  """Reads an IDX file (optionally gzipped) into an array.

  Layout: 2 zero bytes, a type byte, a rank byte r, r big-endian uint32 dims,
  then the row-major data.

  Usage::

      labels = read_idx("t10k-labels-idx1-ubyte.gz")   # shape (10000,)
  """
  path = str(path)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic {raw[:4]!r}); "
                     "pass the MNIST-style *-idx?-ubyte[.gz] files.")
  rank = raw[3]
  dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
               for i in range(rank))
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  offset = 4 + 4 * rank
  count = int(np.prod(dims)) if dims else 0
  if len(raw) - offset != count * dtype.itemsize:
    raise ValueError(f"{path} is truncated or corrupt: header says {dims} but "
                     f"holds {len(raw) - offset} data bytes; re-download it.")
  return np.frombuffer(raw, dtype, count, offset).reshape(dims)


def idx_files(folder, split):
  """(images, labels) IDX paths of ``split`` in ``folder``, or None."""
  prefix = "train" if split == "train" else "t10k"
  found = []
  for kind, rank in (("images", 3), ("labels", 1)):
    hit = None
    for sep in ("-", "."):
      for ext in (".gz", ""):
        p = pathlib.Path(folder) / f"{prefix}-{kind}{sep}idx{rank}-ubyte{ext}"
        if p.is_file():
          hit = hit or p
    if hit is None:
      return None
    found.append(hit)
  return tuple(found)


def read_idx_split(folder, split):
  """(images uint8 NHWC, labels int32) of ``split`` from an IDX folder."""
  images_path, labels_path = idx_files(folder, split)
  x, y = read_idx(images_path), read_idx(labels_path)
  if len(x) != len(y):
    raise ValueError(f"{images_path} has {len(x)} images but {labels_path} "
                     f"has {len(y)} labels; the files do not belong together.")
  return x.astype(np.uint8)[..., None], y.astype(np.int32)


def _unpickle(path):
  with open(path, "rb") as f:
    return pickle.load(f, encoding="bytes")


def cifar_pickle_files(folder, split):
  """The pickle batch files of ``split`` in a CIFAR folder, or None."""
  folder = pathlib.Path(folder)
  if split == "train":
    names = [f"data_batch_{i}" for i in range(1, 6)]
    if not all((folder / n).is_file() for n in names):
      names = ["train"]
  else:
    names = ["test_batch"] if (folder / "test_batch").is_file() else ["test"]
  paths = [folder / n for n in names]
  return paths if all(p.is_file() for p in paths) else None


def read_cifar_pickle(folder, split):
  """Reads a CIFAR-10/100 python pickle folder.

  Each batch is a dict with b'data' (N, 3072) uint8 in channel-major order
  (1024 R, 1024 G, 1024 B values, rows of 32) and b'labels' (CIFAR-10) or
  b'fine_labels' (CIFAR-100); images become (N, 32, 32, 3).

  Returns:
    (images uint8 NHWC, labels int32, class names tuple or None).

  Usage::

      x, y, names = read_cifar_pickle("cifar-100-python", "test")
  """
  folder = pathlib.Path(folder)
  xs, ys = [], []
  for path in cifar_pickle_files(folder, split):
    batch = _unpickle(path)
    label_key = b"fine_labels" if b"fine_labels" in batch else b"labels"
    if b"data" not in batch or label_key not in batch:
      raise ValueError(f"{path} lacks b'data' or b'labels'/b'fine_labels'; it "
                       "is not a CIFAR python batch. Use the official "
                       "cifar-10-python.tar.gz / cifar-100-python.tar.gz.")
    data = np.asarray(batch[b"data"], np.uint8)
    xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    ys.append(np.asarray(batch[label_key], np.int32))
  names = None
  for meta_name, key in (("meta", b"fine_label_names"),
                         ("batches.meta", b"label_names")):
    if (folder / meta_name).is_file():
      meta = _unpickle(folder / meta_name)
      if key in meta:
        names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                      for n in meta[key])
        break
  return np.concatenate(xs), np.concatenate(ys), names


def _is_image(name):
  return name.lower().endswith(IMAGE_EXTENSIONS)


def split_dir(root, split):
  """The folder of ``split`` ('train'/'test') under an image-folder root."""
  for name in SPLIT_DIRS[split]:
    d = pathlib.Path(root) / name
    if d.is_dir():
      return d
  return None


def find_tree_root(folder, depth=2):
  """The folder holding split sub-folders, descending single wrappers.

  Archives often wrap the tree in one top folder ('tiny-imagenet-200/train/..').
  """
  folder = pathlib.Path(folder)
  for _ in range(depth + 1):
    if split_dir(folder, "train") or split_dir(folder, "test"):
      return folder
    subdirs = [d for d in folder.iterdir() if d.is_dir()
               and not d.name.startswith(".")] if folder.is_dir() else []
    if len(subdirs) != 1:
      return None
    folder = subdirs[0]
  return None


def list_image_folder(root, split, class_names=None):
  """Image paths and labels of ``split`` under an image-folder tree.

  Class ids follow ``class_names`` when given and the folder names match it,
  otherwise the sorted class-folder names (as Keras and torchvision do).
  Supports ``<split>/<class>/*.ext``, ``train/<class>/images/*.ext`` and the
  Tiny ImageNet ``val/images`` + ``val_annotations.txt`` layout.

  Returns:
    (list of paths, int32 labels, tuple of class names).
  """
  d = split_dir(root, split)
  if d is None:
    raise FileNotFoundError(f"no {'/'.join(SPLIT_DIRS[split])} folder in {root}")
  annotations = d / "val_annotations.txt"
  if annotations.is_file() and (d / "images").is_dir():
    # Tiny ImageNet val: flat images/ with a file -> wnid table; classes are
    # those of the train split (or wnids.txt) so ids agree across splits.
    table = {}
    for line in annotations.read_text().splitlines():
      parts = line.split("\t")
      if len(parts) >= 2:
        table[parts[0]] = parts[1]
    classes = _tree_classes(root, class_names)
    index = {c: i for i, c in enumerate(classes)}
    files = sorted(f for f in os.listdir(d / "images") if _is_image(f))
    unknown = sorted({table.get(f) for f in files} - set(index))
    if unknown:
      raise ValueError(f"{annotations} names classes {unknown[:5]} absent from "
                       "the train folder; the tree is incomplete.")
    return ([str(d / "images" / f) for f in files],
            np.array([index[table[f]] for f in files], np.int32), classes)
  classes = _class_names_in(d, class_names)
  paths, labels = [], []
  for i, c in enumerate(classes):
    cdir = d / c
    if (cdir / "images").is_dir():
      cdir = cdir / "images"
    files = sorted(f for f in os.listdir(cdir) if _is_image(f))
    paths += [str(cdir / f) for f in files]
    labels += [i] * len(files)
  return paths, np.array(labels, np.int32), classes


def _class_names_in(d, known):
  found = sorted(e.name for e in os.scandir(d)
                 if e.is_dir() and not e.name.startswith("."))
  if known and set(found) == set(known):
    return tuple(known)
  return tuple(found)


def _tree_classes(root, known):
  train = split_dir(root, "train")
  if train is not None:
    return _class_names_in(train, known)
  wnids = pathlib.Path(root) / "wnids.txt"
  if wnids.is_file():
    return tuple(sorted(wnids.read_text().split()))
  raise FileNotFoundError(f"cannot tell the classes of {root}: no train folder "
                          "and no wnids.txt")


def _decode(path, size, channels):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as im:
    im = im.convert("L" if channels == 1 else "RGB")
    if im.size != (size[1], size[0]):
      im = im.resize((size[1], size[0]), Image.BILINEAR)
    a = np.asarray(im, np.uint8)
  return a[..., None] if channels == 1 else a


def decode_images(paths, shape, workers=None):
  """Decodes image files into one uint8 array of ``shape`` = (H, W, C) each.

  Images of another size are resized (bilinear) to (H, W). Decoding runs in a
  thread pool (PIL releases the GIL while decoding).
  """
  h, w, c = shape
  out = np.empty((len(paths), h, w, c), np.uint8)
  workers = workers or min(8, os.cpu_count() or 1)

  def work(i):
    out[i] = _decode(paths[i], (h, w), c)

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    # Chunks amortize the per-task overhead over many tiny images.
    chunks = [range(s, min(s + 512, len(paths)))
              for s in range(0, len(paths), 512)]
    list(pool.map(lambda r: [work(i) for i in r], chunks))
  return out
