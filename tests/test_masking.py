"""sbp_tf.masking: plain-Keras masks (MaskedLayer + in-graph constraint)."""

import numpy as np
import pytest

from sbp_tf.compat import keras, tf
from sbp_tf import masking
import sbp_tf.tfmot as sbp_tfmot
from sbp_tf.pruning.targets import prunable_targets

from tfmot_testlib import LOSS, data, functional, leaked, random_masks, sequential


def test_masked_layer_set_mask_and_config():
  layer = masking.MaskedLayer(keras.layers.Dense(4, name="d"))
  x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
  layer(x)
  np.testing.assert_array_equal(layer.mask_vars["kernel"].numpy(), 1.0)
  w0 = layer.layer.kernel.numpy().copy()
  m = (np.arange(20).reshape(5, 4) % 3 == 0).astype(np.float32)
  layer.set_mask("kernel", m)
  np.testing.assert_array_equal(layer.layer.kernel.numpy(), w0 * m)
  np.testing.assert_allclose(layer(x), x @ (w0 * m) + layer.layer.bias.numpy(),
                             atol=1e-6)
  clone = masking.MaskedLayer.from_config(layer.get_config())
  assert clone.attrs == ("kernel",) and clone.layer.units == 4
  with pytest.raises(ValueError, match="has no prunable weights"):
    masking.MaskedLayer(keras.layers.Flatten())


def test_wrap_fit_sparse_every_step_and_loads_plainly(tmp_path):
  model = functional(seed=21)
  masks = random_masks(model, 0.3, seed=21)
  wrapped = masking.wrap(model, masks)
  assert all(isinstance(l, masking.MaskedLayer) for l in wrapped.layers
             if l.name.startswith("masked_"))
  assert [t.key for t in prunable_targets(wrapped)] == list(masks)
  wrapped.compile(keras.optimizers.Adam(0.05), LOSS)
  x, y = data(model, 32)
  seen = []
  probe = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda b, l: seen.append(max(leaked(wrapped, masks).values())))
  wrapped.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[probe])
  assert len(seen) == 8 and max(seen) == 0.0
  path = str(tmp_path / "masked.keras")
  wrapped.save(path)
  # MaskedLayer is registered serializable: plain keras loads it, and its
  # build reinstalls the constraint, so training stays sparse.
  loaded = keras.models.load_model(path)
  for key, (w, m) in masking.wrapper_masks(loaded).items():
    np.testing.assert_array_equal(m.numpy(), masks[key])
  seen.clear()
  probe2 = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda b, l: seen.append(max(leaked(loaded, masks).values())))
  loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[probe2])
  assert len(seen) == 4 and max(seen) == 0.0
  stripped = masking.strip(loaded)
  assert not any(isinstance(l, keras.layers.Wrapper) for l in stripped.layers)
  np.testing.assert_allclose(stripped(x), loaded(x), atol=1e-6)


def test_user_constraint_is_composed():
  tf.keras.utils.set_random_seed(3)
  model = keras.Sequential([
      keras.layers.Dense(8, input_shape=(4,), name="a",
                         kernel_constraint=keras.constraints.NonNeg()),
      keras.layers.Dense(2, name="b")])
  masks = random_masks(model, 0.5, seed=3)
  wrapped = masking.wrap(model, masks)
  wrapped.compile(keras.optimizers.SGD(0.5), LOSS)
  x, y = data(model, 32)
  wrapped.fit(x, y, batch_size=8, epochs=2, verbose=0)
  kernel = wrapped.get_layer("masked_a").layer.kernel.numpy()
  assert kernel.min() >= 0.0  # user's NonNeg still applies
  assert np.abs(kernel[masks["a/kernel"] == 0]).max() == 0.0


def _manual_masked_sgd(model, masks, x, y, lr, epochs, batch):
  """Independent reference: tape gradients times mask, plain SGD."""
  targets = {id(t.variable): masks[t.key] for t in prunable_targets(model)}
  for t in prunable_targets(model):
    t.variable.assign(t.variable * masks[t.key])
  losses = []
  for _ in range(epochs):
    per_batch = []
    for i in range(0, len(x), batch):
      with tf.GradientTape() as tape:
        loss = LOSS(y[i:i + batch], model(x[i:i + batch], training=True))
      grads = tape.gradient(loss, model.trainable_variables)
      for g, v in zip(grads, model.trainable_variables):
        if id(v) in targets:
          g = g * targets[id(v)]
        v.assign_sub(lr * g)
      per_batch.append(float(loss))
    losses.append(np.mean(per_batch))
  return np.array(losses)


def test_same_trajectory_as_tfmot_and_reference():
  lr, epochs, batch = 0.2, 3, 8
  x, y = data(sequential(), 48, seed=4)
  masks = random_masks(sequential(), 0.3, seed=4)
  runs = {}
  for name, wrap, cbs in (("tfmot", sbp_tfmot.wrap, sbp_tfmot.callbacks),
                          ("masking", masking.wrap, list)):
    model = wrap(sequential(seed=9), masks)
    model.compile(keras.optimizers.SGD(lr), LOSS)
    hist = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0,
                     shuffle=False, callbacks=cbs())
    runs[name] = np.array(hist.history["loss"])
    runs[name + "_w"] = [t.variable.numpy() for t in prunable_targets(model)]
  ref = _manual_masked_sgd(sequential(seed=9), masks, x, y, lr, epochs, batch)
  assert runs["tfmot"][-1] < runs["tfmot"][0]  # it did learn
  np.testing.assert_allclose(runs["tfmot"], runs["masking"], rtol=1e-5)
  np.testing.assert_allclose(runs["masking"], ref, rtol=1e-4)
  for a, b in zip(runs["tfmot_w"], runs["masking_w"]):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_masks_raise_before_any_change():
  model = sequential()
  before = [w.copy() for w in model.get_weights()]
  bad = random_masks(model)
  bad["h1/kernel"] = np.ones((6, 15), np.float32)
  with pytest.raises(ValueError, match="masks for a different model.*'h1/kernel'"):
    masking.wrap(model, bad)
  for a, b in zip(before, model.get_weights()):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="masks for a different model: keys 'x/kernel'"):
    masking.wrap(model, {"x/kernel": np.ones(3)})
