"""load(): search order, the missing-data error, splits, limits, metadata."""

import gzip

import numpy as np
import pytest

from sbp_tf import data
from sbp_tf.data import loader
from sbp_tf.data import sources


def _write_idx(path, array):
  array = np.ascontiguousarray(array, np.uint8)
  head = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(head + array.tobytes())


def _mnist(folder, n=40, value=0):
  folder.mkdir(parents=True)
  y = (np.arange(n) * 7 % 10).astype(np.uint8)
  for prefix in ("train", "t10k"):
    _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
               np.full((n, 28, 28), value, np.uint8))
    _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
  return y


def test_info_for_every_name():
  want = {"mnist": ((28, 28, 1), 10), "fashion_mnist": ((28, 28, 1), 10),
          "cifar10": ((32, 32, 3), 10), "cifar100": ((32, 32, 3), 100),
          "tiny_imagenet": ((64, 64, 3), 200),
          "imagenet2012": ((224, 224, 3), 1000)}
  assert data.names() == sorted(want)
  for name, (shape, k) in want.items():
    meta = data.info(name)
    assert (meta.input_shape, meta.num_classes) == (shape, k)
    assert len(meta.mean) == len(meta.std) == shape[2]
    assert meta.class_names is None or len(meta.class_names) == k
  assert data.info("fashion-mnist").name == "fashion_mnist"
  assert data.info("cifar10").num_examples == {"train": 50000, "test": 10000}
  with pytest.raises(ValueError, match="unknown dataset 'svhn'; pass one of"):
    data.info("svhn")


def test_missing_data_error_lists_every_place(tmp_path, monkeypatch):
  monkeypatch.setenv("SBP_DATA_DIR", str(tmp_path / "env_root"))
  # A data_dir that does not exist is an error of its own (issue 13).
  with pytest.raises(data.DataNotFoundError,
                     match="data_dir .*arg_root' does not exist"):
    data.load("cifar100", "train", data_dir=tmp_path / "arg_root",
              cache_dir=tmp_path / "c", download=False)
  (tmp_path / "arg_root").mkdir()  # exists, but without the dataset
  with pytest.raises(data.DataNotFoundError) as e:
    data.load("cifar100", "train", data_dir=tmp_path / "arg_root",
              cache_dir=tmp_path / "c", download=False)
  msg = str(e.value)
  assert isinstance(e.value, FileNotFoundError)
  assert str(tmp_path / "arg_root") in msg and str(tmp_path / "env_root") in msg
  assert "cifar-100-python" in msg and "tfds.load('cifar100'" in msg
  assert "How to provide cifar100" in msg and "SBP_DATA_DIR" in msg
  if sources.SHARED_DATA.is_dir():
    assert str(sources.SHARED_DATA) in msg
  assert not (tmp_path / "c").exists()  # nothing cached on failure
  with pytest.raises(data.DataNotFoundError,
                     match=r"(?s)tfds: no TensorFlow Datasets builder.*"
                     r"tiny-imagenet-200"):
    data.load("tiny_imagenet", "test", data_dir=tmp_path, download=False)


def test_no_doomed_tfds_download_without_internet(tmp_path, monkeypatch):
  def no_dns(*args, **kwargs):
    raise OSError(-2, "Name or service not known")
  monkeypatch.setattr(loader.socket, "getaddrinfo", no_dns)
  for var in loader._PROXY_VARS:
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(data.DataNotFoundError) as e:
    data.load("cifar100", "train", data_dir=tmp_path / "empty",
              cache_dir=tmp_path / "c", download=True)
  msg = str(e.value)
  assert ("tfds download of 'cifar100' not tried: no internet "
          "(storage.googleapis.com does not resolve: ") in msg
  assert "download=False)" in msg and "download=True)" not in msg
  monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # it resolves
  assert loader._download_unreachable() is None


def test_search_order_data_dir_before_env(tmp_path, monkeypatch):
  _mnist(tmp_path / "a" / "mnist", value=10)
  _mnist(tmp_path / "b" / "mnist", value=200)
  monkeypatch.setenv("SBP_DATA_DIR", str(tmp_path / "b"))
  ds, meta = data.load("mnist", "test", augment=False)
  assert meta.source == f"idx {tmp_path / 'b' / 'mnist'}"
  x = next(iter(ds))[0].numpy()
  np.testing.assert_allclose(x, (200 / 255 - 0.1307) / 0.3081, rtol=1e-5)
  _, meta = data.load("mnist", "test", data_dir=tmp_path / "a")
  assert meta.source == f"idx {tmp_path / 'a' / 'mnist'}"


def test_limit_balanced_and_slicing(tmp_path):
  y = _mnist(tmp_path / "mnist", n=40)
  kw = dict(data_dir=tmp_path, shuffle=False, augment=False, batch_size=100)
  _, ys = next(iter(data.load("mnist", "train", limit=15, balanced=False,
                             **kw)[0]))
  np.testing.assert_array_equal(ys, y[:15])
  # balanced is the default whenever a limit is given.
  ds, meta = data.load("mnist", "train", limit=20, **kw)
  ys = next(iter(ds))[1].numpy()
  assert meta.size == 20
  np.testing.assert_array_equal(np.bincount(ys, minlength=10), [2] * 10)
  np.testing.assert_array_equal(ys, y[np.sort(np.concatenate(
      [np.flatnonzero(y == c)[:2] for c in range(10)]))])
  ys = next(iter(data.load("mnist", "train[:25%]", **kw)[0]))[1].numpy()
  np.testing.assert_array_equal(ys, y[:10])
  ys = next(iter(data.load("mnist", "validation[30:]", **kw)[0]))[1].numpy()
  np.testing.assert_array_equal(ys, y[30:])
  ds, _ = data.load("mnist", "train", batch_size=16, drop_remainder=True,
                    data_dir=tmp_path)
  assert [int(b[0].shape[0]) for b in ds] == [16, 16]


def test_train_only_augmentation_by_default(tmp_path):
  _mnist(tmp_path / "mnist", value=255)
  test_x = next(iter(data.load("mnist", "test", data_dir=tmp_path,
                               batch_size=40)[0]))[0].numpy()
  train_x = next(iter(data.load("mnist", "train", data_dir=tmp_path,
                                batch_size=40)[0]))[0].numpy()
  white = (1 - 0.1307) / 0.3081
  np.testing.assert_allclose(test_x, white, rtol=1e-5)  # untouched
  # Train: pad-2 + crop shifts black borders into some of the white images.
  black = (0 - 0.1307) / 0.3081
  assert np.isclose(train_x, black).any(axis=(1, 2, 3)).mean() > 0.5


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="dev"), "bad split 'dev'; pass 'train' or 'test'"),
    (dict(split="train", augment="mixup"), "augment must be True, False"),
    (dict(split="train", limit=0), "limit must be a positive int"),
    (dict(split="train", balanced=True), "balanced=True needs limit"),
])
def test_bad_arguments(kwargs, match, tmp_path):
  with pytest.raises(ValueError, match=match):
    data.load("mnist", data_dir=tmp_path, download=False, **kwargs)


def test_data_limit_env_caps_every_load(tmp_path, monkeypatch):
  _mnist(tmp_path / "mnist", n=40)
  kw = dict(data_dir=tmp_path, shuffle=False, augment=False, batch_size=100)
  monkeypatch.setenv("SBP_DATA_LIMIT", "20")
  ds, meta = data.load("mnist", "train", **kw)  # no limit: capped at 20
  ys = next(iter(ds))[1].numpy()
  assert meta.size == 20 and len(ys) == 20
  np.testing.assert_array_equal(np.bincount(ys, minlength=10), [2] * 10)
  assert data.load("mnist", "test", limit=30, **kw)[1].size == 20
  assert data.load("mnist", "test", limit=10, **kw)[1].size == 10  # smaller
  monkeypatch.setenv("SBP_DATA_LIMIT", "many")
  with pytest.raises(ValueError, match=r"SBP_DATA_LIMIT='many' is not a "
                     r"positive integer\. Fix: set it to a number"):
    data.load("mnist", "train", **kw)
  monkeypatch.delenv("SBP_DATA_LIMIT")
  assert data.load("mnist", "train", **kw)[1].size == 40
