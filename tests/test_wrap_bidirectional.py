"""Mask wrappers on Bidirectional RNNs, and refusals that name the way out.

A ``Bidirectional(LSTM/GRU)`` holds four prunable kernels
(``<bidi>/forward_<rnn>/<cell>/kernel``, ``.../recurrent_kernel`` and the
backward pair); ``sbp_tf.tfmot.wrap`` and ``sbp_tf.masking.wrap`` wrap the
Bidirectional whole in a ``MaskedLayer``. The masks must be installed, hold
through ``fit``, come back from a saved file (``sbp_tf.tfmot.load_model``)
with their constraints back, and the zeros must survive ``strip``.
"""


import numpy as np
import pytest

from sbp_tf import masking, pruning
from sbp_tf.compat import keras, tf
import sbp_tf.tfmot as sbp_tfmot

WRAPS = {"tfmot": (sbp_tfmot.wrap, sbp_tfmot.callbacks),
         "masking": (masking.wrap, lambda: [])}


def bidi(kind):
  """Embedding -> Bidirectional(kind) -> TimeDistributed(Dense) -> Conv1D."""
  keras.utils.set_random_seed(0)
  x = keras.Input((6,), dtype="int32")
  h = keras.layers.Embedding(30, 8, name="emb")(x)
  h = keras.layers.Bidirectional(getattr(keras.layers, kind)(
      6, return_sequences=True, name="rnn"), name="bi")(h)
  h = keras.layers.TimeDistributed(keras.layers.Dense(5), name="td")(h)
  h = keras.layers.Conv1D(4, 3, name="conv")(h)
  h = keras.layers.GlobalAveragePooling1D()(h)
  return keras.Model(x, keras.layers.Dense(3, name="head")(h))


def _zeros(model, masks):
  """Largest |w| at a pruned position, over every masked weight."""
  w = {t.key: t.variable.numpy() for t in pruning.prunable_targets(model)}
  return max(float(np.abs(w[k][np.asarray(m) == 0]).max(initial=0.0))
             for k, m in masks.items())


def test_bidirectional_masks_hold_through_fit_load_and_strip(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 30, (16, 6)).astype("int32")
  y = rng.integers(0, 3, 16)
  saved = {}
  # Both RNN kinds and both wrappers (the same MaskedLayer path underneath).
  for kind, how, ext in (("LSTM", "tfmot", "keras"), ("GRU", "masking", "h5")):
    cell, (wrap, callbacks) = kind.lower() + "_cell", WRAPS[how]
    model = bidi(kind)
    masks = pruning.prune(model, "random", 0.6, seed=0).masks
    bi_keys = [k for k in masks if k.startswith("bi/")]
    assert bi_keys == [f"bi/{d}_rnn/{cell}/{w}"
                       for d in ("forward", "backward")
                       for w in ("kernel", "recurrent_kernel")]
    wrapped = wrap(model, masks)
    held = sbp_tfmot.masks_of(wrapped)
    assert list(held) == list(masks)  # every key, Bidirectional's too
    for k in masks:
      np.testing.assert_array_equal(held[k], masks[k])
    wrapped.compile(keras.optimizers.Adam(0.05),
                    keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    before = {t.key: t.variable.numpy()
              for t in pruning.prunable_targets(wrapped)}
    wrapped.fit(x, y, batch_size=4, epochs=1, verbose=0,
                callbacks=callbacks())
    assert _zeros(wrapped, masks) == 0.0
    after = {t.key: t.variable.numpy()
             for t in pruning.prunable_targets(wrapped)}
    for k in bi_keys:  # the kept recurrent weights did train
      assert not np.array_equal(before[k], after[k]), k
    path = str(tmp_path / f"{kind}_{how}.{ext}")
    wrapped.save(path)
    saved[path] = (masks, wrapped.predict(x, verbose=0))
    final = sbp_tfmot.strip(wrapped)
    assert not any(isinstance(l, masking.MaskedLayer) for l in final.layers)
    assert isinstance(final.get_layer("bi"), keras.layers.Bidirectional)
    assert _zeros(final, masks) == 0.0
    np.testing.assert_allclose(final.predict(x, verbose=0), saved[path][1],
                               atol=1e-6)
  for path, (masks, pred) in saved.items():
    loaded = sbp_tfmot.load_model(path)  # .keras (tfmot) and .h5 (masking)
    held = sbp_tfmot.masks_of(loaded)
    assert list(held) == list(masks)
    for k in masks:
      np.testing.assert_array_equal(held[k], masks[k])
    assert _zeros(loaded, masks) == 0.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), pred, atol=1e-6)
    # load_model put the in-graph constraint back on every masked kernel,
    # the Bidirectional's included: nothing is left to install.
    assert masking.keep_sparse(loaded) is False


class Residual(keras.Model):
  """A subclassed model: no graph to clone wrapper layers into."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.d1 = keras.layers.Dense(4, name="d1")
    self.d2 = keras.layers.Dense(2, name="d2")

  def call(self, x):
    return self.d2(x + self.d1(x))


@pytest.mark.parametrize("how", sorted(WRAPS))
def test_refusing_a_subclassed_model_names_masking_constrain(how):
  model = Residual(name="res")
  model(tf.ones((1, 4)))
  masks = pruning.Masks.ones_like(model)
  weights = [w.copy() for w in model.get_weights()]
  with pytest.raises(ValueError, match=r"model 'res' is subclassed.*Fix: keep "
                     r"its masks in place with sbp_tf\.masking\.constrain"):
    WRAPS[how][0](model, masks)
  for a, b in zip(model.get_weights(), weights):  # nothing changed
    np.testing.assert_array_equal(a, b)
  # A functional model holding the subclassed one as a sub-model.
  x = keras.Input((4,))
  outer = keras.Model(x, model(x), name="outer")
  with pytest.raises(ValueError, match=r"sub-model 'res' of model 'outer' is "
                     r"subclassed.*sbp_tf\.masking\.constrain"):
    WRAPS[how][0](outer, pruning.Masks.ones_like(outer))
  # The path the message names works on it.
  assert masking.constrain(model, masks) is model


def test_refusing_a_keras3_model_names_the_keras3_path():
  import keras as k3  # pylint: disable=g-import-not-at-top
  x = k3.Input((4,))
  m3 = k3.Model(x, k3.layers.Dense(2, name="d")(x))
  masks = {"d/kernel": np.ones((4, 2), np.float32)}
  for call in (masking.wrap, masking.constrain, sbp_tfmot.wrap):
    with pytest.raises(TypeError, match=r"got a Keras 3 model.*Fix: .*use "
                       r"the Keras 3 path, sbp_tf\.keras3 \(keras3\.prune, "
                       r"keras3\.mask\(model, masks\)\)") as e:
      call(m3, masks)
    assert "\n" not in str(e.value)
