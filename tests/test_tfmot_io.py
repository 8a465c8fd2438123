"""Save/load round trips of tfmot-wrapped models: .keras, .h5, SavedModel."""

import numpy as np
import pytest

from sbp_tf.compat import keras
import sbp_tf.tfmot as sbp_tfmot
from sbp_tf.pruning.targets import prunable_targets

from tfmot_testlib import (LOSS, data, functional, leaked, random_masks,
                           sequential)


@pytest.fixture(scope="module")
def trained():
  model = functional(seed=11)
  masks = random_masks(model, 0.3, seed=11)
  wrapped = sbp_tfmot.wrap(model, masks)
  wrapped.compile(keras.optimizers.Adam(0.05), LOSS)
  x, y = data(model, 32)
  wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=sbp_tfmot.callbacks())
  return wrapped, masks, x, y


def _steps(model):
  return sorted(int(l.pruning_step.numpy()) for l in model.submodules
                if hasattr(l, "pruning_step"))


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_round_trip_keeps_masks_step_schedule_and_trains(trained, fmt, tmp_path):
  wrapped, masks, x, y = trained
  path = str(tmp_path / ("model." + fmt if fmt != "savedmodel" else "sm"))
  wrapped.save(path)
  loaded = sbp_tfmot.load_model(path)

  held = sbp_tfmot.masks_of(loaded)
  assert sorted(held) == sorted(masks)
  for key, m in masks.items():
    np.testing.assert_array_equal(held[key], m)
  assert _steps(loaded) == _steps(wrapped) == [4] * 4  # 4 batches, 4 wrappers
  scheds = [l.pruning_schedule for l in loaded.submodules
            if hasattr(l, "pruning_schedule")]
  assert scheds and all(isinstance(s, sbp_tfmot.FixedMask) for s in scheds)
  np.testing.assert_allclose(
      scheds[0].sparsity, wrapped.get_layer("prune_low_magnitude_c1")
      .pruning_schedule.sparsity)
  for a, b in zip(loaded.get_weights(), wrapped.get_weights()):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(loaded(x), wrapped(x), atol=1e-6)

  # Resume: same masks, pruned weights stay zero at every step.
  before = {t.key: t.variable.numpy().copy() for t in prunable_targets(loaded)}
  seen = []
  probe = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda b, l: seen.append(max(leaked(loaded, masks).values())))
  loaded.fit(x, y, batch_size=8, epochs=1, verbose=0,
             callbacks=sbp_tfmot.callbacks() + [probe])
  assert len(seen) == 4 and max(seen) == 0.0
  assert _steps(loaded) == [8] * 4
  # .keras and .h5 bring the optimizer state back; tf_keras' SavedModel
  # loader gives a fresh optimizer (a Keras limitation, see docs/tfmot.md).
  assert int(loaded.optimizer.iterations.numpy()) == (
      4 if fmt == "savedmodel" else 8)
  for key, m in masks.items():
    np.testing.assert_array_equal(sbp_tfmot.masks_of(loaded)[key], m)
  assert max(np.abs(t.variable.numpy() - before[t.key]).max()
             for t in prunable_targets(loaded)) > 0


def test_custom_objects_lists_wrapper_and_schedule():
  objs = sbp_tfmot.custom_objects()
  assert objs["PruneLowMagnitude"] is sbp_tfmot.PruneLowMagnitude
  assert objs["sbp_tf>FixedMask"] is sbp_tfmot.FixedMask
  assert "sbp_tf>MaskedLayer" in objs


@pytest.mark.parametrize("build", [functional, sequential])
def test_plain_load_model_of_a_wrapped_file_names_sbp_tf_loader(build, tmp_path):
  """Plain keras.models.load_model stops with one line naming our loader,
  where Keras alone fails with "'str' object is not callable" (functional)
  or "The added layer must be an instance of class Layer" (Sequential)."""
  model = build(seed=5)
  path = str(tmp_path / "wrapped.keras")
  wrapped = sbp_tfmot.wrap(model, random_masks(model, 0.5, seed=5))
  wrapped.save(path)
  with pytest.raises(ValueError) as err:
    keras.models.load_model(path)
  assert "\n" not in str(err.value)
  assert "Fix: load it with sbp_tf.tfmot.load_model(path)" in str(err.value)
  loaded = sbp_tfmot.load_model(path)  # the named fix works
  assert type(loaded).__name__ == ("WrappedFunctional" if build is functional
                                   else "WrappedSequential")
  # tfmot's own scope still loads it with plain load_model.
  with keras.utils.custom_object_scope(sbp_tfmot.custom_objects()):
    assert keras.models.load_model(path).count_params() == wrapped.count_params()
