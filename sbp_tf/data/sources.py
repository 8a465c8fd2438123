"""Finding a dataset: local copies first, then TensorFlow Datasets.

Search order for ``find(name, data_dir)``: the local entries of
:func:`search_path` (each named, see ``SEARCH_PATH``), then TensorFlow
Datasets:

1. ``data_dir``: the explicit argument (the folder itself may be the dataset
   folder or an archive; a ``data_dir`` that does not exist is a
   DataNotFoundError, never a silent fallback to another copy);
2. ``SBP_DATA_DIR``: every folder in $SBP_DATA_DIR (``os.pathsep``-separated;
   one that does not exist is a DataNotFoundError rather than a fallback to
   a copy in the development checkout);
3. ``development checkout``: ``<repo>/../shared/data`` (``SHARED_DATA``), the
   offline data folder next to a development checkout of sbp_tf, when it
   exists (an installed package has no such folder);
4. ``tfds.load`` (honouring ``data_dir``), without downloading, then with
   downloading when allowed.

Inside each root the dataset's usual folder and archive names are tried (see
LOCAL_NAMES). When nothing is found, DataNotFoundError lists every place tried.

Usage::

    src = find("fashion_mnist", None)     # Source(kind='idx', path=...)
"""

import dataclasses
import os
import pathlib
from typing import List, Optional

from sbp_tf.data import cache
from sbp_tf.data import formats

_REPO = pathlib.Path(__file__).resolve().parents[2]
# The development default: the offline data folder beside a checkout.
SHARED_DATA = _REPO.parent / "shared" / "data"

# The named local search entries, in order (see search_path).
SEARCH_PATH = ("data_dir", "SBP_DATA_DIR", "development checkout")

# Folder / archive stem names under a root, per dataset and format.
LOCAL_NAMES = {
    "mnist": {"idx": ("mnist", "MNIST", "MNIST/raw", "mnist/raw")},
    "fashion_mnist": {"idx": ("fashion-mnist", "fashion_mnist",
                              "FashionMNIST/raw", "fashion-mnist/raw")},
    "cifar10": {"pickle": ("cifar-10-batches-py",),
                "tree": ("cifar10", "cifar-10", "cifar10-jpeg"),
                "archive": ("cifar10-jpeg", "cifar10", "cifar-10",
                            "cifar-10-python")},
    "cifar100": {"pickle": ("cifar-100-python",),
                 "tree": ("cifar100", "cifar-100", "cifar100-jpeg"),
                 "archive": ("cifar-100-python", "cifar100", "cifar-100",
                             "cifar100-jpeg")},
    "tiny_imagenet": {"tree": ("tiny-imagenet-200", "tiny_imagenet",
                               "tiny-imagenet"),
                      "archive": ("tiny-imagenet-200", "tiny_imagenet",
                                  "tiny-imagenet")},
    "imagenet2012": {"tree": ("imagenet2012", "imagenet", "ILSVRC2012")},
}
TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist",
              "cifar10": "cifar10", "cifar100": "cifar100",
              "imagenet2012": "imagenet2012"}
TFDS_SPLITS = {"imagenet2012": {"test": "validation"}}


class DataNotFoundError(FileNotFoundError):
  """A dataset was found in none of the places searched (listed in the text)."""


@dataclasses.dataclass(frozen=True)
class Source:
  """A located dataset copy: kind is 'idx', 'pickle', 'tree', 'archive' or 'tfds'."""
  kind: str
  path: str

  def describe(self):
    return f"{self.kind} {self.path}"


def _has_format(folder, name, kind):
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    return False
  if kind == "idx":
    return formats.idx_files(folder, "train") is not None or (
        formats.idx_files(folder, "test") is not None)
  if kind == "pickle":
    first = "data_batch_1" if name == "cifar10" else "train"
    return (folder / first).is_file()
  if kind == "tree":
    return formats.find_tree_root(folder, depth=1) is not None
  return False


def _archives(root, stems):
  for stem in stems:
    for suffix in cache.ARCHIVE_SUFFIXES:
      p = pathlib.Path(root) / (stem + suffix)
      if p.is_file():
        yield p


def _search_root(root, name, itself):
  """Yields Sources of ``name`` under ``root`` (and ``root`` itself if asked)."""
  root = pathlib.Path(root)
  spec = LOCAL_NAMES[name]
  if itself:
    if root.is_file() and cache.archive_stem(root):
      yield Source("archive", str(root))
    for kind in ("idx", "pickle"):
      if kind in spec and _has_format(root, name, kind):
        yield Source(kind, str(root))
    # The root itself as a tree only when it directly holds train/ or test/.
    if "tree" in spec and root.is_dir() and (
        formats.split_dir(root, "train") or formats.split_dir(root, "test")):
      yield Source("tree", str(root))
  for kind in ("idx", "pickle", "tree"):
    for sub in spec.get(kind, ()):
      if _has_format(root / sub, name, kind):
        yield Source(kind, str(root / sub))
  for p in _archives(root, spec.get("archive", ())):
    yield Source("archive", str(p))


@dataclasses.dataclass(frozen=True)
class SearchEntry:
  """One local place searched for datasets.

  Attributes:
    name: which ``SEARCH_PATH`` entry it comes from.
    path: the folder (or archive).
    explicit: the user named it, so it may itself be the dataset folder.
  """
  name: str
  path: pathlib.Path
  explicit: bool


def search_path(data_dir=None) -> List[SearchEntry]:
  """The local places searched for a dataset, in order (``SEARCH_PATH``).

  ``data_dir`` (when given), each folder of $SBP_DATA_DIR, then the
  development checkout's ``../shared/data`` when that folder exists.

  Example::

      [(e.name, str(e.path)) for e in search_path()]
      # [('development checkout', '/work/shared/data')]
  """
  entries = []
  if data_dir:
    entries.append(SearchEntry("data_dir", pathlib.Path(data_dir).expanduser(),
                               True))
  for part in os.environ.get("SBP_DATA_DIR", "").split(os.pathsep):
    if part:
      entries.append(SearchEntry("SBP_DATA_DIR",
                                 pathlib.Path(part).expanduser(), True))
  if SHARED_DATA.is_dir():
    entries.append(SearchEntry("development checkout", SHARED_DATA, False))
  return entries


def find_local(name, data_dir) -> "tuple[Optional[Source], List[str]]":
  """The first local copy of ``name``, and the list of places searched."""
  searched = []
  if data_dir and not pathlib.Path(data_dir).expanduser().exists():
    # An explicit path that is wrong must not silently pick another copy.
    raise DataNotFoundError(
        f"data_dir {str(data_dir)!r} does not exist (looking for {name}). "
        "Fix: pass the folder that holds the dataset (sbp_tf.train: "
        "--config.dataset.data_dir=/path), or leave data_dir unset to search "
        "$SBP_DATA_DIR and the default places.")
  missing_env = None  # an $SBP_DATA_DIR folder that does not exist
  for entry in search_path(data_dir):
    root, explicit = entry.path, entry.explicit
    spec = LOCAL_NAMES[name]
    subs = [s for k in ("idx", "pickle", "tree") for s in spec.get(k, ())]
    arcs = [f"{s}{{{','.join(cache.ARCHIVE_SUFFIXES)}}}"
            for s in spec.get("archive", ())]
    where = "itself and " if explicit else ""
    searched.append(f"{root} [{entry.name}] ({where}"
                    f"{', '.join(subs + arcs)})")
    if not root.exists():
      searched[-1] += " [does not exist]"
      if entry.name == "SBP_DATA_DIR" and missing_env is None:
        missing_env = root
      continue
    for src in _search_root(root, name, explicit):
      if missing_env is not None and entry.name != "SBP_DATA_DIR":
        # The user named that folder: never fall through to another copy.
        raise DataNotFoundError(
            f"SBP_DATA_DIR names {str(missing_env)!r}, which does not exist "
            f"(looking for {name}; another copy is in {root}). Fix: point "
            "SBP_DATA_DIR at the folder that holds the dataset, or unset it "
            "to use the default places.")
      return src, searched
  return None, searched


def how_to_provide(name):
  spec = LOCAL_NAMES[name]
  lines = [f"How to provide {name}: put one of these into a folder and pass it "
           "as data_dir=... (sbp_tf.train / sbp_tf.tune: "
           "--config.dataset.data_dir=/path) or set SBP_DATA_DIR to it:"]
  if "idx" in spec:
    lines.append(f"  - a folder {spec['idx'][0]!r} with train-images-idx3-ubyte.gz,"
                 " train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                 "t10k-labels-idx1-ubyte.gz")
  if "pickle" in spec:
    lines.append(f"  - the python pickle folder {spec['pickle'][0]!r} "
                 "(from the official python tarball)")
  if "tree" in spec:
    lines.append(f"  - an image folder {spec['tree'][0]!r} with "
                 "train/<class>/*.png|jpg and test/<class>/*.png|jpg")
  if "archive" in spec:
    lines.append(f"  - that tree packed as {spec['archive'][0]}.tar.xz, "
                 ".tar.gz or .zip (extracted once into the cache folder)")
  if name in TFDS_NAMES:
    lines.append(f"  - or a prepared TensorFlow Datasets copy: "
                 f"tfds.builder({TFDS_NAMES[name]!r}, data_dir=...)"
                 ".download_and_prepare() on a machine with internet")
  return "\n".join(lines)
