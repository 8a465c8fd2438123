"""sbp_tf.data on the real offline data in ../shared/data (skips when absent)."""

import numpy as np
import pytest
from PIL import Image

from sbp_tf import data
from sbp_tf.data import sources


@pytest.fixture(scope="session")
def cifar_cache(tmp_path_factory):
  # One cache for the session so the 60k JPEGs are decoded only once.
  return tmp_path_factory.mktemp("sbp_cache")


def _all(ds):
  xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
  return np.concatenate(xs), np.concatenate(ys)


def test_fashion_mnist_counts_labels_and_normalization(shared_data, tmp_path):
  for split, n in (("train", 60000), ("test", 10000)):
    ds, meta = data.load("fashion_mnist", split, batch_size=5000,
                         data_dir=shared_data, shuffle=False, augment=False,
                         cache_dir=tmp_path)
    x, y = _all(ds)
    assert meta.size == n and x.shape == (n, 28, 28, 1) and y.dtype == np.int32
    assert meta.num_classes == 10 and meta.class_names[9] == "Ankle boot"
    # Fashion-MNIST is balanced: 6000 / 1000 per class.
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [n // 10] * 10)
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1) < 0.02
  # Independent read of the IDX header + bytes: first test image/label.
  import gzip  # pylint: disable=g-import-not-at-top
  with gzip.open(shared_data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz") as f:
    raw = f.read()
  first = np.frombuffer(raw, np.uint8, 784, 16).reshape(28, 28)
  np.testing.assert_allclose((x[0, ..., 0] * 0.3530 + 0.2860) * 255, first,
                             atol=1e-3)


def test_found_without_flags_in_sibling_shared_folder(shared_data, monkeypatch,
                                                      tmp_path):
  if sources.SHARED_DATA.resolve() != shared_data.resolve():
    pytest.skip("shared data is not the repo's sibling folder")
  monkeypatch.delenv("SBP_DATA_DIR", raising=False)
  _, meta = data.load("fashion_mnist", "test", cache_dir=tmp_path)
  assert meta.source == f"idx {shared_data / 'fashion-mnist'}"


@pytest.mark.slow
def test_cifar10_archive_counts_order_and_stats(shared_data, cifar_cache):
  ds, meta = data.load("cifar10", "train", batch_size=10000, data_dir=shared_data,
                       shuffle=False, augment=False, cache_dir=cifar_cache)
  x, y = _all(ds)
  assert meta.source.endswith("cifar10-jpeg.tar.xz") and meta.size == 50000
  assert x.shape == (50000, 32, 32, 3) and meta.num_classes == 10
  np.testing.assert_array_equal(np.bincount(y, minlength=10), [5000] * 10)
  assert y.min() == 0 and y.max() == 9
  np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0, atol=0.05)
  # The JPEG copy (quality 75, 4:2:0) is smoother than the lossless original
  # the std constants come from: its std sits near 0.93, not 1.
  np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1, atol=0.1)
  # train/cat/0000.jpg sits at 3 * 5000 (sorted classes, sorted files): decode
  # it independently from the archive and undo the normalization.
  import tarfile  # pylint: disable=g-import-not-at-top
  with tarfile.open(shared_data / "cifar10-jpeg.tar.xz") as t:
    ref = np.asarray(Image.open(t.extractfile("train/cat/0000.jpg")).convert("RGB"))
  mean, std = np.array(meta.mean), np.array(meta.std)
  np.testing.assert_allclose((x[15000] * std + mean) * 255, ref, atol=1e-3)
  assert y[15000] == meta.class_names.index("cat") == 3

  test, tmeta = data.load("cifar10", "test", batch_size=10000,
                          data_dir=shared_data, cache_dir=cifar_cache)
  xt, yt = _all(test)
  assert tmeta.size == 10000 and xt.shape == (10000, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(yt, minlength=10), [1000] * 10)
  # Test split: no augmentation by default, so stats match plain normalization.
  np.testing.assert_allclose(xt.mean(axis=(0, 1, 2)), 0, atol=0.07)


@pytest.mark.slow
def test_cifar10_cached_second_load_skips_extraction(shared_data, cifar_cache,
                                                     monkeypatch):
  data.load("cifar10", "test", data_dir=shared_data, cache_dir=cifar_cache)
  from sbp_tf.data import cache  # pylint: disable=g-import-not-at-top

  def boom(*a):
    raise AssertionError("archive extracted again")

  monkeypatch.setattr(cache, "_extract_into", boom)
  ds, meta = data.load("cifar10", "train", data_dir=shared_data, limit=300,
                       cache_dir=cifar_cache, balanced=True, batch_size=300)
  _, y = next(iter(ds))
  assert meta.size == 300
  np.testing.assert_array_equal(np.bincount(y.numpy(), minlength=10), [30] * 10)
