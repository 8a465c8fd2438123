"""Metadata of the datasets sbp_tf knows, available without loading any data.

Usage::

    from sbp_tf import data
    meta = data.info("cifar10")
    meta.input_shape, meta.num_classes      # (32, 32, 3), 10
"""

import dataclasses
from typing import Dict, Optional, Tuple

_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
            "horse", "ship", "truck")
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
            "Shirt", "Sneaker", "Bag", "Ankle boot")
# The official fine-label order of CIFAR-100 (alphabetical, as in its 'meta').
_CIFAR100 = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee clock
cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange
orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
snail snake spider squirrel streetcar sunflower sweet_pepper table tank
telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split())


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model and a training loop need to know about a dataset.

  Attributes:
    name: canonical dataset name, e.g. 'cifar10'.
    input_shape: (height, width, channels) of the images the pipeline yields.
    num_classes: number of labels; labels are int32 in [0, num_classes).
    class_names: label names in label order, or None when unknown.
    num_examples: full split sizes, e.g. {'train': 50000, 'test': 10000}.
    mean: per-channel mean of pixel/255 used for normalization.
    std: per-channel std of pixel/255 used for normalization.
    source: where load() found the data ('' from info()).
    size: examples the loaded dataset yields per epoch (None from info()).

  Usage::

      meta = info("fashion_mnist")
      model = build(..., num_classes=meta.num_classes,
                    input_shape=meta.input_shape)
  """
  name: str
  input_shape: Tuple[int, int, int]
  num_classes: int
  class_names: Optional[Tuple[str, ...]]
  num_examples: Dict[str, int]
  mean: Tuple[float, ...] = ()
  std: Tuple[float, ...] = ()
  source: str = ""
  size: Optional[int] = None


# Per-channel statistics of pixel/255 over each training set (standard values;
# CIFAR stds are the true per-pixel ones, not the often-quoted 0.2023 family).
_INFOS = {
    "mnist": DatasetInfo(
        "mnist", (28, 28, 1), 10, tuple(str(i) for i in range(10)),
        {"train": 60000, "test": 10000}, (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (28, 28, 1), 10, _FASHION,
        {"train": 60000, "test": 10000}, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(
        "cifar10", (32, 32, 3), 10, _CIFAR10, {"train": 50000, "test": 10000},
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo(
        "cifar100", (32, 32, 3), 100, _CIFAR100,
        {"train": 50000, "test": 10000},
        (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # Tiny ImageNet's labelled held-out split is 'val'; it serves as 'test'.
    "tiny_imagenet": DatasetInfo(
        "tiny_imagenet", (64, 64, 3), 200, None,
        {"train": 100000, "test": 10000},
        (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "imagenet2012": DatasetInfo(
        "imagenet2012", (224, 224, 3), 1000, None,
        {"train": 1281167, "test": 50000},
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist",
            "cifar-10": "cifar10", "cifar-100": "cifar100",
            "tiny-imagenet": "tiny_imagenet", "tiny-imagenet-200": "tiny_imagenet",
            "tinyimagenet": "tiny_imagenet", "imagenet": "imagenet2012"}


def names():
  """Canonical names of the supported datasets, e.g. ['cifar10', ...].

  Usage::

      assert "cifar10" in names()
  """
  return sorted(_INFOS)


def canonical_name(name):
  """Maps a dataset name or alias (case-insensitive) to its canonical name."""
  if not isinstance(name, str):
    raise TypeError(f"dataset name must be a str, got {type(name).__name__}; "
                    f"pass one of {names()}.")
  key = name.strip().lower()
  key = _ALIASES.get(key, key)
  if key not in _INFOS:
    raise ValueError(f"unknown dataset {name!r}; pass one of {names()}.")
  return key


def info(name):
  """Metadata of dataset ``name`` without reading any data.

  Normalization uses x_norm = (pixel / 255 - mean[c]) / std[c] per channel c,
  with the ``mean``/``std`` recorded here.

  Args:
    name: one of names() (aliases like 'fashion-mnist' are accepted).

  Returns:
    DatasetInfo.

  Usage::

      info("cifar100").num_classes   # 100
  """
  return _INFOS[canonical_name(name)]
