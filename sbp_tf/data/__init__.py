"""Datasets for sbp_tf: offline-first loading, normalization, augmentation.

Usage::

    from sbp_tf import data
    train, meta = data.load("cifar10", "train", batch_size=128, seed=0)
    data.info("fashion_mnist").num_classes   # 10

See docs/data.md for the formats and the search order.
"""

from sbp_tf.data.catalog import DatasetInfo
from sbp_tf.data.catalog import info
from sbp_tf.data.catalog import names
from sbp_tf.data.loader import load, read_local
from sbp_tf.data.preprocess import batches_per_epoch
from sbp_tf.data.sources import DataNotFoundError, find_local

__all__ = ["DatasetInfo", "DataNotFoundError", "batches_per_epoch",
           "find_local", "info", "load", "names", "read_local"]
