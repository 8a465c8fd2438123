"""Normalization and training augmentation, deterministic given a seed.

Randomness comes from stateless ops whose seeds are drawn from
``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`` zipped with
the data, so the same seed gives the same images in the same order in every
run, a new epoch gives new crops/flips, and parallel maps stay deterministic.

With ``start_step=k`` the pipeline is instead an endless stream of batches
positioned at batch k, in which data epoch d's order and augmentation depend
only on (seed, d) (stateless seeds folded from them): a training run resumed
at any step sees exactly the batches the uninterrupted run would have seen.

Usage::

    ds = from_arrays(x_uint8, y, meta, batch_size=128, shuffle=True,
                     augment="pad_crop_flip", seed=0)
"""

from sbp_tf.compat import tf

AUTOTUNE = tf.data.AUTOTUNE

# Augmentation policy per dataset (used when augment=True / train default).
POLICIES = {"mnist": "pad_crop", "fashion_mnist": "pad_crop",
            "cifar10": "pad_crop_flip", "cifar100": "pad_crop_flip",
            "tiny_imagenet": "pad_crop_flip", "imagenet2012": "resized_crop_flip"}
PAD = {"mnist": 2, "fashion_mnist": 2, "cifar10": 4, "cifar100": 4,
       "tiny_imagenet": 8}


def normalize(images, mean, std):
  """x = (pixel / 255 - mean[c]) / std[c], per channel c, as float32.

  Usage::

      normalize(tf.zeros([1, 32, 32, 3], tf.uint8), (0.5,) * 3, (0.25,) * 3)
  """
  x = tf.cast(images, tf.float32) / 255.0
  return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def pad_crop_flip(images, seed, pad, flip=True):
  """Batched random crop of the zero-padded images, plus a random h-flip.

  Each image is padded with ``pad`` black pixels per side and an HxW window at
  a uniform offset in [0, 2*pad] is kept; with ``flip`` each image is mirrored
  left-right with probability 1/2. ``seed`` is a shape-[2] stateless seed.

  Usage::

      out = pad_crop_flip(batch_uint8, tf.constant([1, 2], tf.int64), pad=4)
  """
  shape = tf.shape(images)
  b, h, w = shape[0], shape[1], shape[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  seeds = tf.random.experimental.stateless_split(seed, 3)
  dy = tf.random.stateless_uniform([b], seeds[0], 0, 2 * pad + 1, tf.int32)
  dx = tf.random.stateless_uniform([b], seeds[1], 0, 2 * pad + 1, tf.int32)
  rows = dy[:, None] + tf.range(h)[None, :]
  cols = dx[:, None] + tf.range(w)[None, :]
  out = tf.gather(padded, rows, axis=1, batch_dims=1)
  out = tf.gather(out, cols, axis=2, batch_dims=1)
  if flip:
    coin = tf.random.stateless_uniform([b], seeds[2]) < 0.5
    out = tf.where(coin[:, None, None, None], tf.reverse(out, axis=[2]), out)
  return out


def resized_crop_flip(image, seed, size):
  """Inception-style random-resized crop (area 8%-100%, aspect 3/4-4/3) + flip.

  Usage::

      out = resized_crop_flip(img_uint8, tf.constant([0, 1], tf.int64), 224)
  """
  seeds = tf.random.experimental.stateless_split(seed, 2)
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), tf.zeros([1, 0, 4], tf.float32), seed=seeds[0],
      min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
      area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, crop_size)
  crop = tf.image.resize(crop, [size, size], antialias=True)
  crop = tf.image.stateless_random_flip_left_right(crop, seeds[1])
  return tf.cast(tf.clip_by_value(tf.round(crop), 0, 255), tf.uint8)


def center_crop(image, size, resize_to=None):
  """Resize the shorter side to ``resize_to`` (default size*256/224), then crop."""
  resize_to = resize_to or int(round(size * 256 / 224))
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  scale = resize_to / tf.minimum(h, w)
  nh = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
  nw = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
  image = tf.image.resize(image, [nh, nw], antialias=True)
  top, left = (nh - size) // 2, (nw - size) // 2
  image = image[top:top + size, left:left + size]
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _seeds(seed):
  return tf.data.Dataset.random(
      seed=seed, rerandomize_each_iteration=True).batch(2)


def batches_per_epoch(n, batch_size, drop_remainder=False):
  """Batches in one pass over ``n`` examples."""
  return n // batch_size if drop_remainder else -(-n // batch_size)


def _epoch_stream(n, make_epoch, *, batch_size, shuffle, seed, drop_remainder,
                  start_step):
  """Endless concatenation of ``make_epoch(indices, epoch_seed)`` from batch
  ``start_step`` on; epoch d's index order and seed depend only on (seed, d)."""
  nb = batches_per_epoch(n, batch_size, drop_remainder)
  if nb < 1:
    raise ValueError(f"{n} examples make no batch of {batch_size} with "
                     "drop_remainder=True; lower batch_size.")
  if (isinstance(start_step, bool) or int(start_step) != start_step
      or start_step < 0):
    raise ValueError(f"start_step must be an int >= 0, got {start_step!r}.")
  first, skip = divmod(int(start_step), nb)
  base = tf.constant([int(seed), 0x5B9], tf.int64)

  def one_epoch(d):
    epoch_seed = tf.random.experimental.stateless_fold_in(base, d)
    idx = tf.range(n, dtype=tf.int64)
    if shuffle:
      keys = tf.random.stateless_uniform([n], epoch_seed, minval=None,
                                         maxval=None, dtype=tf.int64)
      idx = tf.cast(tf.argsort(keys, stable=True), tf.int64)
    return make_epoch(idx, epoch_seed)

  ds = tf.data.Dataset.range(first, 2**62).flat_map(one_epoch)
  return ds.skip(skip) if skip else ds


def _fold(seed, b):
  return tf.random.experimental.stateless_fold_in(seed, b)


def from_arrays(x, y, meta, *, batch_size, shuffle, augment, seed,
                drop_remainder=False, start_step=None):
  """Batched, prefetched (float32 normalized NHWC, int32) dataset of arrays.

  Order: shuffle (seeded, reshuffled each epoch) -> batch -> augment (batched,
  stateless, seeded) -> normalize -> prefetch. With ``start_step=k``: an
  endless stream from batch k on, epoch d shuffled and augmented by seeds
  that depend only on (seed, d) (see the module docstring).
  """
  if start_step is not None:
    return _array_stream(x, y, meta, batch_size=batch_size, shuffle=shuffle,
                         augment=augment, seed=seed,
                         drop_remainder=drop_remainder, start_step=start_step)
  ds = tf.data.Dataset.from_tensor_slices((x, y))
  if shuffle:
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  mean, std = meta.mean, meta.std
  if augment:
    pad = PAD.get(meta.name, 4)
    flip = augment == "pad_crop_flip"

    def aug(batch, s):
      images, labels = batch
      return normalize(pad_crop_flip(images, s, pad, flip), mean, std), labels

    ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(
        aug, num_parallel_calls=AUTOTUNE, deterministic=True)
  else:
    ds = ds.map(lambda images, labels: (normalize(images, mean, std), labels),
                num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.prefetch(AUTOTUNE)


def _array_stream(x, y, meta, *, batch_size, shuffle, augment, seed,
                  drop_remainder, start_step):
  xt, yt = tf.constant(x), tf.constant(y)
  mean, std = meta.mean, meta.std
  pad = PAD.get(meta.name, 4)
  flip = augment == "pad_crop_flip"

  def batches(idx, epoch_seed):
    ds = tf.data.Dataset.from_tensor_slices(idx).batch(
        batch_size, drop_remainder=drop_remainder).enumerate()
    return ds.map(lambda b, i: (i, _fold(epoch_seed, b)))

  def make(i, s):
    images = tf.gather(xt, i)
    if augment:
      images = pad_crop_flip(images, s, pad, flip)
    return normalize(images, mean, std), tf.gather(yt, i)

  ds = _epoch_stream(len(x), batches, batch_size=batch_size, shuffle=shuffle,
                     seed=seed, drop_remainder=drop_remainder,
                     start_step=start_step)
  return ds.map(make, num_parallel_calls=AUTOTUNE,
                deterministic=True).prefetch(AUTOTUNE)


def _decode(path):
  return tf.io.decode_image(tf.io.read_file(path), channels=3,
                            expand_animations=False)


def from_files(paths, labels, meta, *, batch_size, shuffle, augment, seed,
               drop_remainder=False, start_step=None):
  """Like from_arrays, decoding image files on the fly (ImageNet-sized sets)."""
  if start_step is not None:
    pt, lt = tf.constant(list(paths)), tf.constant(labels)
    size = meta.input_shape[0]
    mean, std = meta.mean, meta.std

    def one(j, i, epoch_seed):
      image = _decode(tf.gather(pt, i))
      if augment:
        image = resized_crop_flip(image, _fold(epoch_seed, j), size)
      else:
        image = center_crop(image, size)
      return image, tf.gather(lt, i)

    def epoch(idx, epoch_seed):
      ds = tf.data.Dataset.from_tensor_slices(idx).enumerate().map(
          lambda j, i: one(j, i, epoch_seed), num_parallel_calls=AUTOTUNE,
          deterministic=True)
      return ds.batch(batch_size, drop_remainder=drop_remainder)

    ds = _epoch_stream(len(paths), epoch, batch_size=batch_size,
                       shuffle=shuffle, seed=seed,
                       drop_remainder=drop_remainder, start_step=start_step)
    ds = ds.map(lambda i, l: (normalize(i, mean, std), tf.cast(l, tf.int32)),
                num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)
  ds = tf.data.Dataset.from_tensor_slices((list(paths), labels))
  if shuffle:
    ds = ds.shuffle(min(len(paths), 100_000), seed=seed,
                    reshuffle_each_iteration=True)
  ds = ds.map(lambda p, l: (tf.io.decode_image(
      tf.io.read_file(p), channels=3, expand_animations=False), l),
              num_parallel_calls=AUTOTUNE, deterministic=True)
  return from_images(ds, meta, batch_size=batch_size, augment=augment,
                     seed=seed, drop_remainder=drop_remainder)


def from_images(ds, meta, *, batch_size, augment, seed, drop_remainder=False):
  """Per-image crop/resize of a (uint8 HWC image, label) dataset, then batch."""
  size = meta.input_shape[0]
  mean, std = meta.mean, meta.std
  if augment:
    ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(
        lambda il, s: (resized_crop_flip(il[0], s, size), il[1]),
        num_parallel_calls=AUTOTUNE, deterministic=True)
  else:
    ds = ds.map(lambda i, l: (center_crop(i, size), l),
                num_parallel_calls=AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(lambda i, l: (normalize(i, mean, std), tf.cast(l, tf.int32)),
              num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.prefetch(AUTOTUNE)
