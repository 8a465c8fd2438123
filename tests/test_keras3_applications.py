"""keras.applications models prune, train, save and export on the Keras 3 path.

ResNet50, MobileNetV2 (alpha 0.35) and EfficientNetB0 (weights=None, 32x32
inputs, the smallest each accepts, 10 classes, logits out): by default one
method prunes each at 90%, then the pruned model trains one step with its
masks held, round-trips through a .keras file and exports to a verified
sparse TFLite file. The same with every method in turn (SynFlow with one
round; its 100-round default is the same code run 100 times) is a ``heavy``
test, run with ``SBP_TF_HEAVY_TESTS=1``.

SynFlow on EfficientNetB0: its squeeze-excitation blocks multiply a feature
map by a function of itself, so the plain linearized network's R is a
polynomial whose degree doubles at each of the 16 gated blocks and
overflowed even float64 (R = inf). The gates are pass-through as on the
tf_keras path (:func:`sbp_tf.pruning.state.linearize_activations`): every layer
gets finite, nonzero scores, and for the same weights both paths give the
same scores and masks (tested).
"""

import warnings

import keras
import numpy as np
import pytest

from sbp_tf import keras3
from sbp_tf import pruning
from sbp_tf.compat import keras as tf_keras

_OPTS = dict(weights=None, input_shape=(32, 32, 3), classes=10,
             classifier_activation=None)
APPS = {
    "resnet50": lambda k: k.applications.ResNet50(**_OPTS),
    "mobilenetv2": lambda k: k.applications.MobileNetV2(alpha=0.35, **_OPTS),
    "efficientnetb0": lambda k: k.applications.EfficientNetB0(**_OPTS),
}
METHODS = ("magnitude", "random", "synflow", "grasp", "sbp")  # sbp last
# The default run: one method per model, each method on some model (synflow
# on EfficientNetB0 in test_synflow_on_efficientnet_matches_tf_keras).
DEFAULT = {"resnet50": "magnitude", "mobilenetv2": "grasp",
           "efficientnetb0": "random"}


def _build(name, k=keras):
  k.utils.set_random_seed(0)
  return APPS[name](k)


def _prune_train_save_export(name, methods, tmp_path):
  model = _build(name)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
  y = np.arange(8) % 10
  init = model.get_weights()
  for method in methods:
    model.set_weights(init)
    r = keras3.prune(model, method, 0.9, data=(x, y), seed=0,
                     rounds=1, on_collapse="ignore")
    assert r.masks.kept() == round(0.1 * r.masks.size()), method
    zeros = sum(int(np.sum(t.variable.numpy() == 0))
                for t in keras3.prunable_targets(model))
    assert zeros >= r.masks.size() - r.masks.kept(), method
  keras3.mask(model, r.masks)
  model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=False, run_eagerly=True)
  # One step, eager: tracing the train step cost more than 10 s a model.
  model.fit(x, y, batch_size=8, epochs=1, verbose=0)
  for t in keras3.prunable_targets(model):
    assert np.all(t.variable.numpy()[r.masks[t.key] == 0] == 0), t.key
  model.save(tmp_path / "m.keras")
  loaded = keras.saving.load_model(tmp_path / "m.keras")
  assert keras3.masks_of(loaded).kept() == r.masks.kept()
  np.testing.assert_allclose(loaded(x, training=False),
                             model(x, training=False), rtol=1e-5, atol=1e-5)
  rep = keras3.export.to_tflite(loaded, tmp_path / "m.tflite",
                                representative_data=x, compare_dense=False,
                                time_runs=0)
  assert rep["verified"], rep["max_abs_diff"]
  assert rep["num_sparse_tensors"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPS))
def test_application_prunes_trains_saves_and_exports(name, tmp_path):
  _prune_train_save_export(name, [DEFAULT[name]], tmp_path)


@pytest.mark.heavy
@pytest.mark.parametrize("name", sorted(APPS))
def test_application_every_method_prunes_trains_saves_and_exports(
    name, tmp_path):
  _prune_train_save_export(name, METHODS, tmp_path)


def _same_weights_on_both_paths(name):
  """The Keras 3 and tf_keras builds of ``name``, weights copied by layer
  name from tf_keras to Keras 3."""
  # Fresh name counters: unnamed layers ("normalization") get the same
  # names on both paths whatever was built before.
  keras.backend.clear_session()
  tf_keras.backend.clear_session()
  k3, k2 = _build(name), _build(name, tf_keras)
  by_name = {layer.name: layer for layer in k3.layers}
  for layer in k2.layers:
    if layer.weights:
      by_name[layer.name].set_weights(layer.get_weights())
  return k3, k2


@pytest.mark.slow
def test_synflow_on_efficientnet_matches_tf_keras():
  k3, k2 = _same_weights_on_both_paths("efficientnetb0")
  r3 = keras3.prune(k3, "synflow", 0.9, rounds=1, on_collapse="ignore")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    r2 = pruning.prune(k2, "synflow", 0.9, rounds=1, on_collapse="ignore")
  # Before the gates were pass-through: R = inf (ValueError).
  assert len(r3.scores) == 82
  for key, s in r3.scores.items():
    assert np.all(np.isfinite(s)) and np.any(s > 0), key
  # The same linearization (the tf_keras functions), both in float64: the
  # same scores bit for bit, so the same masks.
  assert list(r3.scores) == list(r2.scores)
  for key in r2.scores:
    np.testing.assert_array_equal(r3.scores[key], r2.scores[key], err_msg=key)
    np.testing.assert_array_equal(r3.masks[key], r2.masks[key], err_msg=key)
  assert r3.masks.kept() == r2.masks.kept() == round(0.1 * r2.masks.size())


def test_relu6_and_gate_are_linearized_in_both_precisions():
  # ReLU(6.) would clip the all-ones signal (zero scores); the gate would
  # square it. Linearized: R = sum of the conv's output, the gate's kernel
  # gets half the flow, as on the tf_keras path.
  x = keras.Input((2, 2, 3))
  h = keras.layers.Conv2D(3, 1, use_bias=False, name="c")(x)
  h = keras.layers.ReLU(6.0, name="relu6")(h)
  g = keras.layers.GlobalAveragePooling2D(keepdims=True)(h)
  g = keras.layers.Conv2D(3, 1, activation="sigmoid", name="gate")(g)
  model = keras.Model(x, keras.layers.Multiply()([h, g]))
  model.get_layer("c").set_weights([np.full((1, 1, 3, 3), 4.0, "float32")])
  for precision, rtol in (("float64", 1e-12), ("float32", 1e-6)):
    # float32: on the model itself, linearized while it runs.
    scores = keras3.score(model, "synflow", precision=precision)
    # R = 4 positions * 3 channels * (3 inputs * 4) = 144; the gate's
    # kernel gets half of it, c's flow: 72 through the signal, 72 back
    # through the gate (conserved).
    np.testing.assert_allclose(scores["gate/kernel"].sum(), 72.0, rtol=rtol)
    np.testing.assert_allclose(scores["c/kernel"].sum(), 144.0, rtol=rtol)
  # The model's own layers are restored: ReLU(6.) clips again.
  np.testing.assert_allclose(model.get_layer("relu6")(np.full((1, 3), 9.0)), 6.0)
