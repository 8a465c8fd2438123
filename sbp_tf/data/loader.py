"""``load(name, split)``: a batched, normalized tf.data pipeline plus metadata.

Usage::

    from sbp_tf import data
    train, meta = data.load("cifar10", "train", batch_size=128, seed=0)
    test, _ = data.load("cifar10", "test", batch_size=256)
    images, labels = next(iter(train))   # (128, 32, 32, 3) float32, (128,) int32
"""

import contextlib
import dataclasses
import logging
import os
import pathlib
import re
import socket
from typing import Optional

import numpy as np

from sbp_tf import log
from sbp_tf.data import cache
from sbp_tf.data import catalog
from sbp_tf.data import formats
from sbp_tf.data import preprocess
from sbp_tf.data import sources

_SPLIT_ALIASES = {"train": "train", "training": "train", "test": "test",
                  "val": "test", "validation": "test", "eval": "test"}
_SPLIT_RE = re.compile(r"^\s*(\w+)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*$")


def parse_split(split):
  """'train[:10%]' -> ('train', None, '10%'); aliases val/validation -> test."""
  if not isinstance(split, str):
    raise TypeError(f"split must be a str like 'train' or 'test[:50%]', got "
                    f"{type(split).__name__}.")
  m = _SPLIT_RE.match(split)
  if not m or m.group(1).lower() not in _SPLIT_ALIASES:
    raise ValueError(f"bad split {split!r}; pass 'train' or 'test' (aliases "
                     "'validation', 'val'), optionally sliced like 'train[:10%]'"
                     " or 'test[100:200]'.")
  return _SPLIT_ALIASES[m.group(1).lower()], m.group(2), m.group(3)


def _bound(b, n):
  if b is None:
    return None
  v = int(round(float(b[:-1]) * n / 100)) if b.endswith("%") else int(b)
  return v


def _class_balanced_first(y, limit, num_classes):
  """Indices of the first ~limit/C examples of every class, in original order."""
  quota = np.full(num_classes, limit // num_classes)
  quota[:limit % num_classes] += 1
  keep = np.zeros(len(y), bool)
  for c in range(num_classes):
    keep[np.flatnonzero(y == c)[:quota[c]]] = True
  return np.flatnonzero(keep)


def _tree_key(root, split):
  d = formats.split_dir(root, split)
  parts = [root, d] + sorted(p for p in d.iterdir() if p.is_dir())
  return cache.identity(*parts)


def _decode_tree(root, split, meta):
  paths, y, classes = formats.list_image_folder(root, split, meta.class_names)
  if not paths:
    raise ValueError(f"no images (*{', *'.join(formats.IMAGE_EXTENSIONS)}) under "
                     f"{formats.split_dir(root, split)}; the tree is empty.")
  x = formats.decode_images(paths, meta.input_shape)
  return x, y, classes


def _pickle_dir(folder, name):
  """A CIFAR pickle folder inside an extracted archive, or None."""
  first = "data_batch_1" if name == "cifar10" else "train"
  for p in sorted(pathlib.Path(folder).rglob(first)):
    if p.is_file():
      return p.parent
  return None


def _read_extracted(folder, name, split, meta):
  pick = _pickle_dir(folder, name) if name in ("cifar10", "cifar100") else None
  if pick is not None:
    return formats.read_cifar_pickle(pick, split)
  root = formats.find_tree_root(folder)
  if root is None:
    raise ValueError(f"the archive extracted to {folder} holds neither a "
                     "train/ test/ image tree nor CIFAR pickles; repack it as "
                     "train/<class>/*.jpg and test/<class>/*.jpg.")
  return _decode_tree(root, split, meta)


def read_local(name, split, src, cache_dir=None):
  """(uint8 NHWC images, int32 labels, class names) of ``split`` from ``src``."""
  meta = catalog.info(name)
  path = pathlib.Path(src.path)
  if src.kind == "idx":
    if formats.idx_files(path, split) is None:
      raise sources.DataNotFoundError(
          f"{path} has no {split} IDX files ({'train' if split == 'train' else 't10k'}"
          "-images-idx3-ubyte[.gz] and -labels-idx1-ubyte[.gz]).")
    x, y = formats.read_idx_split(path, split)
    return x, y, meta.class_names
  if src.kind == "pickle":
    if formats.cifar_pickle_files(path, split) is None:
      raise sources.DataNotFoundError(f"{path} has no {split} pickle batch.")
    return formats.read_cifar_pickle(path, split)
  # Image trees and archives: decoded arrays are cached, keyed by the source.
  root = cache.cache_root(cache_dir)
  if src.kind == "tree":
    tree = formats.find_tree_root(path, depth=1)
    if formats.split_dir(tree, split) is None:
      raise sources.DataNotFoundError(f"{tree} has no {split} folder.")
    key = _tree_key(tree, split)
  else:
    key = cache.identity(path)
  npz = cache.array_path(root, name, key, split)
  hit = cache.load_arrays(npz)
  if hit is not None:
    return hit["x"], hit["y"], tuple(str(c) for c in hit["classes"])
  if src.kind == "tree":
    x, y, classes = _decode_tree(tree, split, meta)
  else:
    x, y, classes = _read_extracted(cache.extracted(path, root), name, split,
                                    meta)
  cache.save_arrays(npz, x=x, y=y, classes=np.array(classes or (), str))
  return x, y, classes


# tfds downloads from the internet; on a machine without it this name does
# not resolve at once, where a download would retry for minutes and fail.
_DOWNLOAD_PROBE = "storage.googleapis.com"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def _download_unreachable() -> Optional[str]:
  """Why a tfds download cannot work here (no DNS for the internet), or
  None. With a proxy set, the proxy resolves names: always None."""
  if any(os.environ.get(v) for v in _PROXY_VARS):
    return None
  try:
    socket.getaddrinfo(_DOWNLOAD_PROBE, 443)
    return None
  except OSError as e:
    return f"no internet ({_DOWNLOAD_PROBE} does not resolve: {e})"


@contextlib.contextmanager
def _quiet_probe(quiet: bool):
  """Hides tfds' warnings (absl logger) while only looking for a prepared
  copy: a missing one is reported in the error's list of places searched."""
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  if quiet:
    absl_logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    absl_logger.setLevel(level)


def _tfds_load(name, split_str, data_dir, download, searched):
  """(tf.data.Dataset of (image, label), class names) from tfds, or None."""
  tfds_name = sources.TFDS_NAMES.get(name)
  if tfds_name is None:
    searched.append(f"tfds: no TensorFlow Datasets builder for {name}")
    return None
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    searched.append(f"tfds: not importable ({e})")
    return None
  where = data_dir or "its default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
  for dl in ((False, True) if download else (False,)):
    unreachable = _download_unreachable() if dl else None
    if unreachable:
      searched.append(f"tfds download of {tfds_name!r} not tried: {unreachable}")
      continue
    try:
      with _quiet_probe(not dl):
        ds, tinfo = tfds.load(tfds_name, split=split_str, data_dir=data_dir,
                              download=dl, as_supervised=True, with_info=True)
      names = tuple(tinfo.features["label"].names)
      return ds, names, f"tfds {tfds_name} in {where}"
    except Exception as e:  # pylint: disable=broad-except
      # Offline machines fail here in many ways; record why and move on.
      first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
      searched.append(f"tfds.load({tfds_name!r}, data_dir={data_dir!r}, "
                      f"download={dl}): {type(e).__name__}: {first}")
  return None


def load(name, split, *, batch_size=128, data_dir=None, shuffle=None,
         augment=None, seed=0, limit=None, drop_remainder=False,
         cache_dir=None, balanced=None, download=True, start_step=None):
  """Loads a dataset split as a batched, normalized, prefetched tf.data pipeline.

  Images are normalized per channel c as (pixel / 255 - mean[c]) / std[c]
  (constants in the returned info). Training augmentation (default for
  'train' only): CIFAR/Tiny ImageNet pad 4 (8) px + random crop + horizontal
  flip, (Fashion-)MNIST pad 2 + crop, ImageNet random-resized crop + flip;
  evaluation on ImageNet resizes to 256 and center-crops 224.

  Args:
    name: mnist, fashion_mnist, cifar10, cifar100, tiny_imagenet, imagenet2012.
    split: 'train' or 'test' ('validation'/'val' are aliases of 'test'),
      optionally sliced: 'train[:10%]', 'test[100:300]'.
    batch_size: examples per batch.
    data_dir: a folder holding the dataset (or the dataset folder/archive
      itself); also used as tfds' data_dir. Then $SBP_DATA_DIR, then
      <repo>/../shared/data, then tfds are searched.
    shuffle: shuffle each epoch; default True for 'train', False otherwise.
    augment: True/False, or a policy name; default True for 'train' only.
    seed: seeds the shuffle order and the augmentation.
    limit: keep only the first ``limit`` examples (after slicing).
    drop_remainder: drop the last partial batch.
    cache_dir: cache folder for extracted archives and decoded arrays
      (default $SBP_CACHE_DIR or ~/.cache/sbp_tf).
    balanced: with ``limit``, take the first limit/num_classes of each class.
      Default (None): True whenever ``limit`` is given, because image-folder
      and archive copies list examples class by class, so "the first N" would
      hold only the first classes; pass False for the plain first N.
    download: let tfds download when nothing local is found.
    start_step: None (default): one pass over the data per iteration,
      reshuffled and re-augmented on every new iteration. An int k: an
      endless stream of batches positioned at batch k, in which pass
      (epoch) d's order and augmentation depend only on (seed, d), so a
      training run resumed at step k sees exactly the batches the
      uninterrupted run saw (``info.size`` examples, i.e.
      ceil(size / batch_size) batches, per pass). imagenet2012 read through
      tfds (no local copy) only repeats, reshuffled per pass (a note says
      so).

  Returns:
    (dataset of (float32 [B, H, W, C], int32 [B]) batches, DatasetInfo) where
    the info's ``source`` says what was read and ``size`` how many examples
    one epoch yields.

  Raises:
    DataNotFoundError: the data is nowhere; the message lists every place
      searched and how to provide it.

  Usage::

      ds, meta = load("fashion_mnist", "train", batch_size=64, limit=1000)
      model.fit(ds, epochs=1)
  """
  meta = catalog.info(name)
  name = meta.name
  base, start, stop = parse_split(split)
  limit = capped_limit(limit)
  balanced, shuffle, augment = _check_load_args(
      meta, base, batch_size, limit, balanced, shuffle, augment)
  src, searched = sources.find_local(name, data_dir)
  kwargs = dict(batch_size=batch_size, shuffle=shuffle, augment=augment,
                seed=seed, drop_remainder=drop_remainder,
                start_step=start_step)
  if src is not None and name == "imagenet2012":
    tree = formats.find_tree_root(src.path, depth=1)
    paths, y, classes = formats.list_image_folder(tree, base)
    idx = _select(y, len(y), start, stop, limit, balanced, meta)
    out = dataclasses.replace(meta, class_names=classes,
                              source=src.describe(), size=len(idx))
    return preprocess.from_files([paths[i] for i in idx], y[idx], out,
                                 **kwargs), out
  if src is not None:
    x, y, classes = read_local(name, base, src, cache_dir)
    source = src.describe()
  else:
    tfds_split = sources.TFDS_SPLITS.get(name, {}).get(base, base)
    got = _tfds_load(name, tfds_split, data_dir, download, searched)
    if got is None:
      raise sources.DataNotFoundError(
          f"dataset {name!r} ({base}) not found. Searched, in order:\n  - "
          + "\n  - ".join(searched) + "\n" + sources.how_to_provide(name))
    ds, classes, source = got
    if name == "imagenet2012":
      return _imagenet_stream(ds, meta, base, start, stop, limit, classes,
                              source, **kwargs)
    x, y = _to_numpy(ds)
  if classes and len(classes) != meta.num_classes:
    raise ValueError(f"{source} has {len(classes)} classes but {name} has "
                     f"{meta.num_classes}; point data_dir at the full dataset.")
  _check(x, y, meta, source)
  idx = _select(y, len(y), start, stop, limit, balanced, meta)
  if len(idx) != len(y):
    x, y = x[idx], y[idx]
  out = dataclasses.replace(meta, class_names=tuple(classes) if classes else
                            meta.class_names, source=source, size=len(y))
  return preprocess.from_arrays(x, y.astype(np.int32), out, **kwargs), out


LIMIT_ENV = "SBP_DATA_LIMIT"
_said_cap = []


def capped_limit(limit):
  """``limit``, capped at ``$SBP_DATA_LIMIT`` when that is set (a positive int).

  The variable shrinks every :func:`load` of a process at once, so a long
  example (e.g. the README's, 10k CIFAR-10 images) runs as written in
  seconds, as the docs' snippet test runs it; said once per process.

  Raises:
    ValueError: the variable is set but not a positive integer.
  """
  raw = os.environ.get(LIMIT_ENV, "").strip()
  if not raw:
    return limit
  if not raw.isdigit() or int(raw) < 1:
    raise ValueError(f"{LIMIT_ENV}={raw!r} is not a positive integer. Fix: "
                     f"set it to a number of examples (e.g. 256) or unset it.")
  cap = int(raw)
  if not _said_cap:
    _said_cap.append(cap)
    log.say(f"{LIMIT_ENV}={cap}: every dataset is cut to at most {cap} "
            "examples per split (unset it for full runs).")
  if limit is None or (isinstance(limit, (int, np.integer)) and limit > cap):
    return cap
  return limit  # smaller, or not an int (the argument check names it)


def _check_load_args(meta, base, batch_size, limit, balanced, shuffle,
                     augment):
  """Validates :func:`load`'s arguments; returns ``(balanced, shuffle,
  augment)`` with their defaults resolved."""
  name = meta.name
  for arg, val in (("batch_size", batch_size), ("limit", limit)):
    if arg == "limit" and val is None:
      continue
    if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
      raise ValueError(f"{arg} must be a positive int, got {val!r}; pass e.g. "
                       f"{arg}=128.")
  if balanced and limit is None:
    raise ValueError("balanced=True needs limit=N (the subset size); pass both.")
  if balanced is None:
    balanced = limit is not None
  training = base == "train"
  shuffle = training if shuffle is None else bool(shuffle)
  if augment is None:
    augment = training
  if augment is True:
    augment = preprocess.POLICIES[name]
  elif augment is not False and augment not in preprocess.POLICIES.values():
    raise ValueError(f"augment must be True, False, None or one of "
                     f"{sorted(set(preprocess.POLICIES.values()))}, got {augment!r}.")
  if augment == "resized_crop_flip" and name != "imagenet2012":
    raise ValueError("augment='resized_crop_flip' is for imagenet2012 only; "
                     "pass augment=True for the dataset's own policy.")
  if name == "imagenet2012" and augment not in (False, "resized_crop_flip"):
    raise ValueError("imagenet2012 supports only augment='resized_crop_flip' "
                     "(or True/False).")
  return balanced, shuffle, augment


def _imagenet_stream(ds, meta, base, start, stop, limit, classes, source, *,
                     batch_size, shuffle, augment, seed, drop_remainder,
                     start_step):
  """ImageNet read through tfds: sliced, shuffled and batched as a stream
  (no index to reorder by)."""
  n_all = meta.num_examples[base]
  if start or stop or limit:
    ds = ds.skip(_bound(start, n_all) or 0)
    n = (_bound(stop, n_all) or n_all) - (_bound(start, n_all) or 0)
    ds = ds.take(min(n, limit or n))
  if shuffle:
    ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
  out = dataclasses.replace(meta, class_names=classes, source=source)
  if start_step is not None:
    # A tfds stream has no index to reorder by; it repeats, reshuffled
    # per pass, and a resumed run restarts the order at pass 1.
    log.say("note: imagenet2012 read through tfds repeats reshuffled "
            "each pass; a resumed run will not see the exact batches of "
            "the uninterrupted one (use a local image folder for that).")
    ds = ds.repeat()
  return preprocess.from_images(ds, out, batch_size=batch_size,
                                augment=augment, seed=seed,
                                drop_remainder=drop_remainder), out


def _to_numpy(ds):
  xs, ys = [], []
  for x, y in ds.batch(4096).as_numpy_iterator():
    xs.append(x)
    ys.append(y)
  return np.concatenate(xs).astype(np.uint8), np.concatenate(ys).astype(np.int32)


def _select(y, n, start, stop, limit, balanced, meta):
  idx = np.arange(n)[slice(_bound(start, n), _bound(stop, n))]
  if limit is not None:
    if balanced:
      idx = idx[_class_balanced_first(y[idx], limit, meta.num_classes)]
    else:
      idx = idx[:limit]
  return idx


def _check(x, y, meta, source):
  if tuple(x.shape[1:]) != tuple(meta.input_shape):
    raise ValueError(f"{source} holds images of shape {x.shape[1:]} but "
                     f"{meta.name} images are {meta.input_shape}; point "
                     "data_dir at the right dataset.")
  if len(y) and (y.min() < 0 or y.max() >= meta.num_classes):
    raise ValueError(f"{source} has labels in [{y.min()}, {y.max()}] but "
                     f"{meta.name} has {meta.num_classes} classes; point "
                     "data_dir at the right dataset.")
