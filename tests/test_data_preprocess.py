"""Normalization and the seeded CIFAR augmentation."""

import numpy as np
import pytest

from sbp_tf.compat import tf
from sbp_tf import data
from sbp_tf.data import preprocess


def test_normalize_matches_numpy():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
  mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
  got = preprocess.normalize(x, mean, std).numpy()
  want = (x / 255.0 - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _coded(n):
  # Pixel (r, c) holds r in channel 0 and c in channel 1 (+1, so pad 0 differs).
  r, c = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  img = np.stack([r + 1, c + 1, np.zeros_like(r)], -1).astype(np.uint8)
  return np.repeat(img[None], n, 0)


def test_pad_crop_flip_are_windows_of_padded_images_with_uniform_offsets():
  n = 4000
  out = preprocess.pad_crop_flip(tf.constant(_coded(n)),
                                 tf.constant([3, 4], tf.int64), pad=4).numpy()
  # Recover each image's (dy, dx, flip) from an interior pixel and check the
  # whole image equals that window of the zero-padded original.
  padded = np.pad(_coded(1)[0], ((4, 4), (4, 4), (0, 0)))
  dys, dxs, flips = [], [], []
  for img in out[:300]:
    center = img[16, 16]
    flipped = img[16, 20, 1] < img[16, 12, 1]  # column codes run backwards
    win_c = 31 - 16 if flipped else 16
    dy = int(center[0]) - 1 + 4 - 16
    dx = int(center[1]) - 1 + 4 - win_c
    win = padded[dy:dy + 32, dx:dx + 32]
    np.testing.assert_array_equal(img, win[:, ::-1] if flipped else win)
    dys.append(dy)
    dxs.append(dx)
    flips.append(flipped)
  assert set(dys) == set(range(9)) and set(dxs) == set(range(9))
  # Flip probability 1/2, Monte Carlo over all n images.
  flipped_all = out[:, 16, 20, 1].astype(int) < out[:, 16, 12, 1].astype(int)
  assert abs(flipped_all.mean() - 0.5) < 0.03
  assert abs(np.mean(dys) - 4) < 0.5


def _epochs(seed, n_epochs=2, **kw):
  x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
  y = np.arange(64, dtype=np.int32) % 10
  meta = data.info("cifar10")
  ds = preprocess.from_arrays(x, y, meta, batch_size=16, seed=seed, **kw)
  return [np.concatenate([b[0].numpy() for b in ds]) for _ in range(n_epochs)]


def test_augmentation_deterministic_per_seed_and_new_each_epoch():
  a = _epochs(7, shuffle=True, augment="pad_crop_flip")
  b = _epochs(7, shuffle=True, augment="pad_crop_flip")
  c = _epochs(8, shuffle=True, augment="pad_crop_flip")
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], a[1])
  assert not np.array_equal(a[0], c[0])
  # Without shuffling the augmentation alone still changes between epochs.
  d = _epochs(7, shuffle=False, augment="pad_crop_flip")
  assert not np.array_equal(d[0], d[1])


def test_no_augmentation_is_plain_normalization():
  e = _epochs(7, shuffle=False, augment=False)
  np.testing.assert_array_equal(e[0], e[1])
  x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
  meta = data.info("cifar10")
  np.testing.assert_allclose(e[0], preprocess.normalize(x, meta.mean, meta.std),
                             atol=1e-6)


def test_resized_crop_and_center_crop_shapes():
  img = tf.constant(np.random.default_rng(1).integers(
      0, 256, (300, 180, 3), dtype=np.uint8))
  a = preprocess.resized_crop_flip(img, tf.constant([1, 2], tf.int64), 224)
  b = preprocess.resized_crop_flip(img, tf.constant([1, 2], tf.int64), 224)
  assert a.shape == (224, 224, 3) and a.dtype == tf.uint8
  np.testing.assert_array_equal(a, b)
  c = preprocess.center_crop(img, 224)
  assert c.shape == (224, 224, 3)
  # Shorter side 180 -> 256: scale 256/180; the crop is centred in that image.
  full = tf.image.resize(img, [427, 256], antialias=True)
  np.testing.assert_allclose(c.numpy(), np.clip(np.round(
      full[101:325, 16:240].numpy()), 0, 255), atol=1)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_batch_size_is_rejected(bad):
  with pytest.raises(ValueError, match="batch_size must be a positive int"):
    data.load("cifar10", "train", batch_size=bad)
