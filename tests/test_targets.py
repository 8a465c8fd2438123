"""Tests for sbp_tf.pruning.targets: which weights are prunable, and keys."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

from sbp_tf.compat import keras
from sbp_tf.pruning.targets import prunable_targets


def _functional():
  x = keras.Input((8, 8, 3))
  h = keras.layers.Conv2D(4, 3, name="conv1")(x)
  h = keras.layers.BatchNormalization(name="bn1")(h)
  h = keras.layers.DepthwiseConv2D(3, name="dw")(h)
  h = keras.layers.SeparableConv2D(5, 1, name="sep")(h)
  h = keras.layers.GlobalAveragePooling2D()(h)
  y = keras.layers.Dense(10, name="head")(h)
  return keras.Model(x, y, name="net")


def test_functional_keys_in_layer_order_and_shapes():
  model = _functional()
  targets = prunable_targets(model)
  assert [t.key for t in targets] == [
      "conv1/kernel", "dw/depthwise_kernel", "sep/depthwise_kernel",
      "sep/pointwise_kernel", "head/kernel"]
  assert [tuple(t.variable.shape) for t in targets] == [
      (3, 3, 3, 4), (3, 3, 4, 1), (1, 1, 4, 1), (1, 1, 4, 5), (5, 10)]
  # Biases and batch-norm parameters are never targets.
  n_target = sum(int(np.prod(t.variable.shape)) for t in targets)
  n_kernel = sum(int(np.prod(w.shape)) for w in model.trainable_weights
                 if "kernel" in w.name)
  assert n_target == n_kernel


def test_nested_model_keys_carry_submodel_path():
  inner = keras.Sequential(
      [keras.layers.Dense(6, name="d1"), keras.layers.Dense(4, name="d2")],
      name="backbone")
  x = keras.Input((3,))
  y = keras.layers.Dense(2, name="head")(inner(x))
  model = keras.Model(x, y)
  assert [t.key for t in prunable_targets(model)] == [
      "backbone/d1/kernel", "backbone/d2/kernel", "head/kernel"]


def test_shared_layer_listed_once():
  shared = keras.layers.Dense(3, name="shared")
  x = keras.Input((3,))
  model = keras.Model(x, shared(shared(x)))
  assert [t.key for t in prunable_targets(model)] == ["shared/kernel"]


def test_tfmot_wrapped_model_has_same_keys_and_variables():
  model = _functional()
  plain = [t.key for t in prunable_targets(model)]
  wrapped = tfmot.sparsity.keras.prune_low_magnitude(model)
  keys = [t.key for t in prunable_targets(wrapped)]
  # tfmot wraps only the layers it supports; those keep their plain keys.
  assert set(keys) == set(plain)
  assert keys == plain


def test_unbuilt_model_error_names_fix():
  model = keras.Sequential([keras.layers.Dense(2)])
  with pytest.raises(ValueError, match="not built.*Call it on an input"):
    prunable_targets(model)
