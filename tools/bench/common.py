"""Helpers shared by the benchmark's sections (no section): models, data,
``fit`` throughput, JSON and markdown cells."""

import contextlib
import time
from typing import Any, Dict, List, Sequence

import numpy as np

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import data
from sbp_tf import markdown
from sbp_tf import models
from sbp_tf import pruning
from sbp_tf.compat import keras
from sbp_tf.compat import tf


def build_model(name, input_shape, num_classes, options, seed):
  """``models.build(name, num_classes, input_shape, **options)`` after seeding
  Python, NumPy and TF with ``seed`` (same seed, same initial weights)."""
  tf.keras.utils.set_random_seed(seed)
  return models.build(name, num_classes, tuple(input_shape), **options)


def compile_model(model):
  """SGD(0.01, momentum 0.9) on ``pruning.default_loss()`` (logits)."""
  model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=pruning.default_loss())


def batch(seed, data_dir, size, input_shape, num_classes):
  """One ``(x, y, source)`` batch: real CIFAR-10 when the shape fits, else
  Gaussian ``x`` and uniform labels from ``seed``."""
  if tuple(input_shape) == (32, 32, 3) and num_classes == 10:
    # Absent data is not an error: the Gaussian batch times the same code.
    with contextlib.suppress(Exception):
      ds, _ = data.load("cifar10", "train", batch_size=size, limit=size,
                        data_dir=data_dir, shuffle=False, augment=False)
      x, y = next(iter(ds))
      return x.numpy(), y.numpy().astype(np.int32), "cifar10"
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((size,) + tuple(input_shape)).astype(np.float32)
  y = rng.integers(0, num_classes, size=(size,)).astype(np.int32)
  return x, y, "gaussian"


def cached_train_data(settings, size, steps, shape, ncls):
  """The first ``steps`` batches of sbp_tf.data CIFAR-10, cached, repeated.

  Returns ``(dataset, source description)``; Gaussian tensors when the data
  cannot be loaded.
  """
  try:
    ds, _ = data.load("cifar10", "train", batch_size=size, limit=size * steps,
                      data_dir=settings.data_dir, seed=settings.seed,
                      drop_remainder=True)
    source = "sbp_tf.data cifar10 train (first batches, cached in memory)"
  except Exception as e:  # pylint: disable=broad-except
    x, y, _ = batch(settings.seed, settings.data_dir, size * steps, shape,
                    ncls)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(size,
                                                          drop_remainder=True)
    source = f"Gaussian tensors (sbp_tf.data unavailable: {e})"
  return ds.take(steps).cache().repeat().prefetch(2), source


class _Timer(keras.callbacks.Callback):
  """Records perf_counter at each batch end (placed after every other
  callback); batch 0 of the epoch only starts the clock."""

  def on_epoch_begin(self, epoch, logs=None):
    self.ends = []

  def on_train_batch_end(self, batch_index, logs=None):
    self.ends.append(time.perf_counter())

  def images_per_s(self, batch_size):
    """``(steps - 1) * batch_size / (end of last step - end of first)``."""
    if len(self.ends) < 2:
      raise ValueError("need >= 2 timed steps per epoch. Fix: raise "
                       "train_steps in the section's presets.")
    return (len(self.ends) - 1) * batch_size / (self.ends[-1] - self.ends[0])


def fit_rate(model, ds, steps, batch_size, callbacks, walls=None):
  """Steady images/s of one ``fit`` epoch; appends the call's wall time to
  ``walls`` (setup and first step included there)."""
  timer = _Timer()
  t0 = time.perf_counter()
  model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0,
            callbacks=list(callbacks) + [timer])
  if walls is not None:
    walls.append(time.perf_counter() - t0)
  return timer.images_per_s(batch_size)


def jsonable(obj):
  """A JSON-serializable copy (numbers, strings, lists, dicts) of ``obj``;
  anything else as its ``repr``."""
  if isinstance(obj, dict):
    return {str(k): jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, (np.floating, np.integer)):
    return obj.item()
  if isinstance(obj, (str, int, float, bool)) or obj is None:
    return obj
  return repr(obj)


def fmt(v, digits=3):
  """A figure for markdown: ``digits`` significant digits, None as ``-``."""
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.{digits}g}"
  return str(v)


def stat(s: Dict[str, Any], digits=3) -> str:
  """A statistics object as ``median [min, max]``."""
  return (f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}, "
          f"{fmt(s['max'], digits)}]")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
  """``markdown.table`` (left-aligned, cells as given) as a list of lines."""
  return markdown.table(header, rows).rstrip("\n").split("\n")
