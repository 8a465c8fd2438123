"""Masks hold in a plain Keras 3 model.fit, in .keras files and checkpoints."""

import os
import warnings

import keras
import numpy as np
import pytest

from sbp_tf import keras3
from sbp_tf.keras3 import masking
from paths_testlib import res_mlp


def _model(seed=0):
  return keras3.models.build("ffnn", 10, (8, 8, 1), depth=2, width=32,
                             seed=seed)


def _data(n=64):
  rng = np.random.default_rng(0)
  return (rng.normal(size=(n, 8, 8, 1)).astype("float32"),
          (np.arange(n) % 10).astype("int64"))


def _random_masks(model, density=0.3, seed=0):
  rng = np.random.default_rng(seed)
  return keras3.Masks({t.key: (rng.random(t.variable.shape) < density)
                       for t in keras3.prunable_targets(model)})


class _EveryStep(keras.callbacks.Callback):
  """Records, after every batch, the largest |w| at pruned positions and
  whether the kept weights moved."""

  def __init__(self, masks):
    super().__init__()
    self.masks, self.pruned_max, self.moved = masks, [], []
    self._last = None

  def on_train_batch_end(self, batch, logs=None):
    ts = keras3.prunable_targets(self.model)
    w = {t.key: t.variable.numpy() for t in ts}
    self.pruned_max.append(max(float(np.abs(w[k][self.masks[k] == 0]).max())
                               for k in self.masks))
    if self._last is not None:
      self.moved.append(any(not np.array_equal(w[k], self._last[k])
                            for k in w))
    self._last = w


def test_mask_constraint_config_round_trip_is_exact():
  m = (np.random.default_rng(0).random((3, 3, 5, 7)) < 0.1).astype("float32")
  c = masking.MaskConstraint(m, inner=keras.constraints.NonNeg())
  cfg = c.get_config()
  assert cfg["shape"] == [3, 3, 5, 7] and isinstance(cfg["packed"], str)
  back = masking.MaskConstraint.from_config(cfg)
  np.testing.assert_array_equal(back.mask, m)
  assert isinstance(back.inner, keras.constraints.NonNeg)
  w = np.where(np.arange(315).reshape(3, 3, 5, 7) % 2, 0.1, -0.1)
  w = w.astype("float32")
  np.testing.assert_array_equal(np.asarray(back(w)), np.maximum(w, 0) * m)


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam", "adamw"])
def test_pruned_weights_are_exactly_zero_after_every_step(optimizer):
  model, (x, y) = _model(), _data()
  masks = keras3.mask(model, _random_masks(model))
  opt = {"sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
         "adam": lambda: keras.optimizers.Adam(1e-2),
         "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1)}
  model.compile(opt[optimizer](), keras.losses.SparseCategoricalCrossentropy(
      from_logits=True))
  cb = _EveryStep(masks)
  model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
  assert len(cb.pruned_max) == 8 and max(cb.pruned_max) == 0.0
  assert all(cb.moved)  # the kept weights train
  enforced = keras3.masks_of(model)
  assert list(enforced) == list(masks)
  for k in masks:
    np.testing.assert_array_equal(enforced[k], masks[k])


def test_masks_travel_in_keras_files_and_checkpoints(tmp_path):
  model, (x, y) = _model(), _data()
  masks = keras3.mask(model, _random_masks(model))
  model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  ckpts = [keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.keras")),
           keras.callbacks.ModelCheckpoint(
               str(tmp_path / "e{epoch}.weights.h5"), save_weights_only=True)]
  model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=ckpts)
  for epoch in (1, 2):
    loaded = keras.saving.load_model(tmp_path / f"e{epoch}.keras")
    got = keras3.masks_of(loaded)
    assert list(got) == list(masks)
    for t in keras3.prunable_targets(loaded):
      np.testing.assert_array_equal(got[t.key], masks[t.key])
      assert np.all(t.variable.numpy()[masks[t.key] == 0] == 0)
    fresh = _model(seed=5)
    fresh.load_weights(tmp_path / f"e{epoch}.weights.h5")
    for t in keras3.prunable_targets(fresh):
      assert np.all(t.variable.numpy()[masks[t.key] == 0] == 0)
  # A loaded model keeps enforcing its masks with a new optimizer.
  loaded.compile(keras.optimizers.Adam(1e-2),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  cb = _EveryStep(masks)
  loaded.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[cb])
  assert max(cb.pruned_max) == 0.0 and all(cb.moved)
  np.testing.assert_allclose(loaded.predict(x, verbose=0),
                             loaded.predict(x, verbose=0))


def test_mask_after_a_traced_fit_retraces_and_keeps_other_constraints():
  inp = keras.Input((6,))
  out = keras.layers.Dense(4, kernel_constraint=keras.constraints.NonNeg(),
                           name="d")(inp)
  model = keras.Model(inp, out)
  model.compile("sgd", "mse")
  x, y = np.ones((8, 6), "float32"), np.full((8, 4), -1.0, "float32")
  model.fit(x, y, verbose=0)  # traced without masks
  m = np.zeros((6, 4), "float32")
  m[:3] = 1.0
  keras3.mask(model, {"d/kernel": m})
  assert isinstance(model.get_layer("d").kernel_constraint.inner,
                     keras.constraints.NonNeg)
  model.fit(x, y, epochs=3, verbose=0)
  w = model.get_layer("d").kernel.numpy()
  assert np.all(w[3:] == 0) and np.all(w >= 0)
  assert isinstance(keras3.unmask(model), keras3.Masks)
  assert isinstance(model.get_layer("d").kernel.constraint,
                    keras.constraints.NonNeg)


def test_bad_masks_are_refused_and_change_nothing():
  model = _model()
  before = [v.numpy() for v in model.weights]
  key = keras3.prunable_targets(model)[0].key
  with pytest.raises(ValueError, match="not a prunable weight"):
    keras3.mask(model, {"nope/kernel": np.ones((2, 2))})
  with pytest.raises(ValueError, match="has shape"):
    keras3.mask(model, {key: np.ones((2, 2))})
  for a, v in zip(before, model.weights):
    np.testing.assert_array_equal(a, v.numpy())
  assert not keras3.masks_of(model)


def test_masks_file_is_shared_with_the_tf_keras_path(tmp_path):
  model = _model()
  masks = _random_masks(model)
  path = masks.save(os.fspath(tmp_path / "m.npz"))
  loaded = keras3.Masks.load(path)
  keras3.mask(model, loaded)
  assert keras3.masks_of(model).kept() == masks.kept()


def test_masking_a_subclassed_model_warns_that_its_file_holds_no_masks(
    tmp_path):
  sub = res_mlp(keras)
  model = sub(name="sub")
  model(np.ones((2, 8), "float32"))
  m = np.zeros((8, 16), "float32")
  m[0] = 1.0
  with pytest.warns(UserWarning, match=r"'sub' is a subclassed model.*holds "
                    r"the zeros but not the masks. Fix: save the masks"):
    keras3.mask(model, {"d1/kernel": m})
  assert list(keras3.masks_of(model)) == ["d1/kernel"]  # enforced in memory
  # What the warning says: the file has the zeros, not the masks.
  model.save(tmp_path / "m.keras")
  loaded = keras.saving.load_model(tmp_path / "m.keras")
  assert np.all(loaded.d1.kernel.numpy()[1:] == 0)
  assert not keras3.masks_of(loaded)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # functional models carry their masks
    keras3.mask(_model(), _random_masks(_model()))
