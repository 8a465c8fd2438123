"""A class-mixed copy of the offline CIFAR-10 for subset (cpu/smoke) runs.

``sbp_tf.data.load(..., limit=N)`` keeps the first N examples in file order,
and the offline CIFAR-10 JPEG tree is sorted by class: the first 10,000
training images are airplanes and automobiles only. Reduced-scale grids
therefore read a copy whose examples are in one fixed random order
(permutation seeded with 0), written once as CIFAR python pickles
(``cifar-10-batches-py``) into a cache folder outside the repository, so that
any first-N subset covers all ten classes in near-equal numbers. The pixels
are the JPEG copy's, unchanged.

Usage::

    from tools import reproduce_data
    data_dir = reproduce_data.mixed_cifar10()   # then dataset.data_dir
"""

import os
import pathlib
import pickle
import shutil
import tempfile

import numpy as np

PERMUTATION_SEED = 0


def cache_root() -> pathlib.Path:
  """``$SBP_CACHE_DIR`` or ``~/.cache/sbp_tf``, as sbp_tf.data uses."""
  return pathlib.Path(os.environ.get("SBP_CACHE_DIR") or
                      pathlib.Path.home() / ".cache" / "sbp_tf")


def _write_batches(folder, x, y, names, split):
  # CIFAR layout: (N, 3072) uint8 channel-major rows, labels as a list.
  flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
  if split == "train":
    parts = np.array_split(np.arange(len(x)), 5)
    files = [f"data_batch_{i + 1}" for i in range(5)]
  else:
    parts, files = [np.arange(len(x))], ["test_batch"]
  for idx, fname in zip(parts, files):
    with open(folder / fname, "wb") as f:
      pickle.dump({b"data": flat[idx], b"labels": [int(v) for v in y[idx]]},
                  f, protocol=4)
  with open(folder / "batches.meta", "wb") as f:
    pickle.dump({b"label_names": [n.encode() for n in names]}, f, protocol=4)


def mixed_cifar10(root=None, create: bool = True) -> str:
  """Folder holding ``cifar-10-batches-py`` in a fixed random order.

  Order: train and test each permuted by
  ``np.random.RandomState(0).permutation(n)``. Created on first use (about 5
  s), atomically; later calls return at once.

  Args:
    root: parent folder (default ``<cache_root()>/reproduce``).
    create: False only computes the path (for building configs).

  Returns:
    The ``data_dir`` to pass to ``sbp_tf.data.load`` / ``dataset.data_dir``.
  """
  root = pathlib.Path(root) if root else cache_root() / "reproduce"
  out = root / f"cifar10-mixed-seed{PERMUTATION_SEED}"
  if not create or (out / "cifar-10-batches-py" / "test_batch").exists():
    return str(out)
  from sbp_tf import data  # pylint: disable=g-import-not-at-top
  src, searched = data.find_local("cifar10", None)
  if src is None:
    raise FileNotFoundError(
        "no offline CIFAR-10 found (searched: " + "; ".join(searched) +
        "). Fix: set SBP_DATA_DIR to the folder holding cifar10-jpeg.tar.xz.")
  root.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=".mixed."))
  try:
    batches = tmp / "cifar-10-batches-py"
    batches.mkdir()
    for split in ("train", "test"):
      x, y, names = data.read_local("cifar10", split, src)
      perm = np.random.RandomState(PERMUTATION_SEED).permutation(len(y))
      _write_batches(batches, x[perm], np.asarray(y)[perm], names, split)
    try:
      os.replace(tmp, out)
    except OSError:  # another process won the race; its copy is identical
      shutil.rmtree(tmp, ignore_errors=True)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return str(out)
