"""SynFlow's float64 runner is built once per model and reused.

``pruning.score(model, "synflow")`` and every round of ``prune`` reuse the
float64 clone and its traced step kept on the model (``scores._runner``).
The cached step must give the scores of the computation it replaced bit for
bit: here written out independently (the linearized values computed in
numpy, assigned to a fresh float64 clone, ``R`` differentiated by a tape,
``|W * dR/dW|`` in numpy), and it must see weights changed after it was
built (a mask applied, a kernel rescaled).
"""

import numpy as np

from sbp_tf import compat, models, pruning
from sbp_tf.compat import keras, tf
from sbp_tf.pruning import precision, scores, state


def _resnet(seed=0):
  keras.utils.set_random_seed(seed)
  return models.build("resnet_cifar", 10, (32, 32, 3), depth=8,
                      width_multiplier=0.25)


def _numpy_reference(model):
  """SynFlow's scores of ``model`` by the per-round numpy path: a fresh
  float64 clone given ``state.linear_values`` of the model (kernels
  ``|W|``), one tape over ``R`` on one all-ones example."""
  clone, pairs = precision.clone(model, compat.keras_of(model), "float64",
                                 scores.input_shapes(model))
  state.linearize_activations(clone)
  mapped = {id(v): c for v, c in pairs}
  for v, new in state.linear_values(
      model, lambda k, w: np.abs(w.astype(np.float64))):
    mapped[id(v)].assign(np.asarray(new, np.float64))
  kernels = [mapped[id(t.variable)] for t in pruning.prunable_targets(model)]

  @tf.function(autograph=False)
  def grad():
    with tf.GradientTape() as tape:
      r = tf.reduce_sum(clone(tf.ones([1, 32, 32, 3], tf.float64),
                              training=False))
    return tape.gradient(r, kernels)

  return {t.key: np.abs(k.numpy() * g.numpy())
          for t, k, g in zip(pruning.prunable_targets(model), kernels,
                             grad())}


def _assert_bits_equal(got, want):
  assert set(got) == set(want)
  for k in want:
    assert got[k].dtype == np.float64
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_cached_runner_gives_the_numpy_path_scores_bit_for_bit():
  m = _resnet()
  first = pruning.score(m, "synflow")
  cache = m.__dict__[scores._RUNNER_ATTR]
  run = next(iter(cache.values()))
  again = pruning.score(m, "synflow")  # by name: a new method instance
  assert len(cache) == 1 and next(iter(cache.values())) is run  # reused
  want = _numpy_reference(m)
  _assert_bits_equal(first, want)
  _assert_bits_equal(again, want)
  assert run.float64


def test_cached_runner_sees_changed_weights():
  m = _resnet()
  before = pruning.score(m, "synflow")
  # A mask (half of the first conv's weights zeroed) and a rescaled kernel.
  first, last = (t.variable for t in (pruning.prunable_targets(m)[0],
                                      pruning.prunable_targets(m)[-1]))
  w = first.numpy()
  first.assign(w * (np.arange(w.size).reshape(w.shape) % 2))
  last.assign(last.numpy() * 3.0)
  after = pruning.score(m, "synflow")
  assert len(m.__dict__[scores._RUNNER_ATTR]) == 1  # the same runner
  _assert_bits_equal(after, _numpy_reference(m))
  key = pruning.prunable_targets(m)[0].key
  assert np.all(after[key].reshape(-1)[::2] == 0)  # pruned: score 0
  assert not np.array_equal(after[key], before[key])
  # A fresh model holding the same weights scores the same, bit for bit.
  fresh = _resnet(seed=1)
  fresh.set_weights(m.get_weights())
  _assert_bits_equal(pruning.score(fresh, "synflow"), after)


def test_a_different_precision_is_a_different_runner():
  m = _resnet()
  exact = pruning.score(m, "synflow")
  f32 = pruning.score(m, "synflow", precision="float32")
  assert len(m.__dict__[scores._RUNNER_ATTR]) == 2
  runs = list(m.__dict__[scores._RUNNER_ATTR].values())
  assert [r.float64 for r in runs] == [True, False]
  # float32 agrees to float32 rounding, not bit for bit.
  k = pruning.prunable_targets(m)[1].key
  np.testing.assert_allclose(f32[k], exact[k], rtol=1e-3,
                             atol=1e-6 * exact[k].max())
