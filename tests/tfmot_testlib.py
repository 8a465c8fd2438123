"""Tiny models and random masks shared by the tfmot/masking/export tests."""

import numpy as np

from sbp_tf.compat import keras, tf
from sbp_tf.pruning.targets import prunable_targets


def functional(seed=0, name="net"):
  """Conv -> DepthwiseConv -> Dense -> nested Sequential -> Dense (logits)."""
  tf.keras.utils.set_random_seed(seed)
  inner = keras.Sequential(
      [keras.layers.Dense(6, activation="relu", input_shape=(8,), name="d_in")],
      name="sub")
  x = keras.Input((5, 5, 1))
  h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(x)
  h = keras.layers.DepthwiseConv2D(2, name="dw")(h)
  h = keras.layers.Flatten()(h)
  h = keras.layers.Dense(8, activation="tanh", name="d1")(h)
  h = inner(h)
  y = keras.layers.Dense(3, name="out")(h)
  return keras.Model(x, y, name=name)


def sequential(seed=0):
  tf.keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.layers.Dense(16, activation="relu", input_shape=(6,), name="h1"),
      keras.layers.Dense(3, name="logits")], name="seq")


def random_masks(model, density=0.4, seed=0):
  """0/1 masks keyed by target key, each with at least one kept weight."""
  rng = np.random.default_rng(seed)
  out = {}
  for t in prunable_targets(model):
    m = (rng.random(t.variable.shape) < density).astype(np.float32)
    m.reshape(-1)[0] = 1.0
    out[t.key] = m
  return out


def data(model, n=64, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n,) + tuple(model.input_shape[1:])).astype(
      np.float32)
  y = rng.integers(0, model.output_shape[-1], n).astype(np.int32)
  return x, y


def leaked(model, masks):
  """Largest |w| over pruned positions of each masked weight."""
  out = {}
  for t in prunable_targets(model):
    if t.key in masks:
      w = t.variable.numpy()
      out[t.key] = float(np.abs(w[masks[t.key] == 0]).max(initial=0.0))
  return out


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
