"""The conventions as options (issue 26): scoring_mode, count_rule and
SynFlow's biases, each pinned against formulas re-derived here.

Every reference value below is computed in this file in float64 (a
``tf.GradientTape`` over the Keras model's own forward pass, numpy for the
selection), never with the library's saliency or threshold code. With the
reference-compatible options (``scoring_mode='inference'``,
``count_rule='floor_pruned'``, ``biases='abs'``) one-shot masks equal those
of the reference implementation's rules (ganguli-lab/Synaptic-Flow:
``model.eval()``; ``k = int((1 - d) N)`` pruned at the ``k``-th smallest
score, ``score <= threshold`` removed; SynFlow on ``|p|`` of every
parameter and statistic, activations kept), on a small CNN and an MLP,
with and without batch norm and biases.
"""

import keras as keras3_module
import numpy as np
import pytest

from sbp_tf import keras3, pruning
from sbp_tf.compat import keras as keras2_module
from sbp_tf.compat import tf
from sbp_tf.pruning import conventions

KITS = ("tf_keras", "keras3")
F64 = "float64"


class _Path:

  def __init__(self, kit):
    self.kit = kit
    self.K = keras2_module if kit == "tf_keras" else keras3_module
    self.prune = keras3.prune if kit == "keras3" else pruning.prune
    self.score = keras3.score if kit == "keras3" else pruning.score
    self.targets = (keras3.prunable_targets if kit == "keras3"
                    else pruning.prunable_targets)


def _cnn(K, bias, bn):
  L = K.layers
  inp = K.Input((6, 6, 2), dtype=F64)
  h = L.Conv2D(4, 3, use_bias=bias, dtype=F64, name="c1")(inp)
  if bn:
    h = L.BatchNormalization(dtype=F64, name="bn1")(h)
  h = L.Activation("relu", dtype=F64)(h)
  h = L.Conv2D(5, 3, use_bias=bias, activation="relu", dtype=F64,
               name="c2")(h)
  h = L.Flatten(dtype=F64)(h)
  return K.Model(inp, L.Dense(3, use_bias=bias, dtype=F64, name="out")(h))


def _mlp(K, bias, bn):
  L = K.layers
  inp = K.Input((7,), dtype=F64)
  h = L.Dense(6, use_bias=bias, dtype=F64, name="d1")(inp)
  if bn:
    h = L.BatchNormalization(dtype=F64, name="bn1")(h)
  h = L.Activation("relu", dtype=F64)(h)
  h = L.Dense(5, use_bias=bias, activation="relu", dtype=F64, name="d2")(h)
  return K.Model(inp, L.Dense(3, use_bias=bias, dtype=F64, name="out")(h))


def _net(path, arch, bias, bn, seed=0):
  """The net with non-default biases and batch-norm state (as a trained or
  custom-initialized model has), so every convention changes something."""
  path.K.utils.set_random_seed(seed)
  model = (_cnn if arch == "cnn" else _mlp)(path.K, bias, bn)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if getattr(layer, "use_bias", False) and layer.bias is not None:
      layer.bias.assign(rng.normal(0, 0.3, layer.bias.shape))
    if "BatchNormalization" in type(layer).__name__:
      n = layer.gamma.shape
      layer.gamma.assign(rng.uniform(0.5, 1.5, n))
      layer.beta.assign(rng.normal(0, 0.3, n))
      layer.moving_mean.assign(rng.normal(0, 0.3, n))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
  shape = (16,) + tuple(model.inputs[0].shape[1:])
  x = rng.normal(size=shape)
  y = rng.integers(0, 3, 16)
  return model, x, y


def _kernels(path, model):
  return [(t.key, t.variable) for t in path.targets(model)]


def _ce(model, x, y, training, temperature=1.0):
  logits = tf.cast(model(x, training=training), tf.float64) / temperature
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=y, logits=logits))


def _snip_ref(path, model, x, y, training):
  ks = _kernels(path, model)
  with tf.GradientTape() as tape:
    loss = _ce(model, x, y, training)
  g = tape.gradient(loss, [v for _, v in ks])
  return {k: np.abs(np.asarray(v) * gi.numpy()) for (k, v), gi in zip(ks, g)}


def _grasp_ref(path, model, x, y, training, t=200.0):
  """The reference's GraSP score ``W * (H g)`` (its highest kept)."""
  ks = _kernels(path, model)
  vs = [v for _, v in ks]
  with tf.GradientTape() as tape:
    loss = _ce(model, x, y, training, t)
  g = [a.numpy() for a in tape.gradient(loss, vs)]
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      loss = _ce(model, x, y, training, t)
    z = tf.add_n([tf.reduce_sum(a * b) for a, b in
                  zip(inner.gradient(loss, vs), g)])
  hg = outer.gradient(z, vs)
  return {k: np.asarray(v) * h.numpy() for (k, v), h in zip(ks, hg)}


def _synflow_ref(path, model, biases):
  """``|W dR/dW|`` on a copy with kernels ``|W|``: biases 0 and batch norm
  (1, 0, 0, 1) for 'zero'; every parameter ``|p|`` for 'abs' (the
  reference). Activations stay: ReLU is the identity on this all-positive
  signal (checked)."""
  clone = path.K.models.clone_model(model)
  clone.set_weights(model.get_weights())
  kernels = {id(v) for _, v in _kernels(path, clone)}
  for layer in clone.layers:
    for v in layer.weights:
      value = np.asarray(v)
      if id(v) in kernels or biases == "abs":
        v.assign(np.abs(value))
      elif "gamma" in v.name or "moving_variance" in v.name:
        v.assign(np.ones_like(value))
      else:  # bias, beta, moving mean
        v.assign(np.zeros_like(value))
  ones = tf.ones((1,) + tuple(model.inputs[0].shape[1:]), tf.float64)
  ks = _kernels(path, clone)
  with tf.GradientTape() as tape:
    h = ones
    pre_relu_min = np.inf
    for layer in clone.layers[1:]:
      if "Activation" in type(layer).__name__:
        pre_relu_min = min(pre_relu_min, float(tf.reduce_min(h)))
      h = layer(h, training=False)
    r = tf.reduce_sum(h)
  assert pre_relu_min > 0  # ReLU is the identity here, as in ours
  g = tape.gradient(r, [v for _, v in ks])
  return {k: np.abs(np.asarray(v) * gi.numpy()) for (k, v), gi in zip(ks, g)}


def _reference_masks(scores, density, scope="global"):
  """The reference's rule: prune ``k = int((1 - d) n)`` at the ``k``-th
  smallest score, every score ``<= threshold`` removed."""
  def rule(flat):
    k = int((1.0 - density) * flat.size)
    if k < 1:
      return np.ones(flat.size)
    threshold = np.sort(flat)[k - 1]
    return (flat > threshold).astype(float)
  keys = list(scores)
  if scope == "layerwise":
    return {k: rule(scores[k].ravel()).reshape(scores[k].shape) for k in keys}
  flat = rule(np.concatenate([scores[k].ravel() for k in keys]))
  out, i = {}, 0
  for k in keys:
    n = scores[k].size
    out[k] = flat[i:i + n].reshape(scores[k].shape)
    i += n
  return out


def _assert_no_near_tie(scores, density):
  """The masks are decided by a margin far above float32 round-off (the
  library's loss is float32): the test is about the rule, not luck."""
  flat = np.sort(np.concatenate([s.ravel() for s in scores.values()]))
  k = int((1.0 - density) * flat.size)
  gap = flat[k] - flat[k - 1]
  assert gap > 1e-6 * np.abs(flat).max(), gap


# --- count_rule ---------------------------------------------------------

def test_kept_count_rules():
  assert conventions.kept_count(10, 0.25) == 2          # round(2.5): even
  assert conventions.kept_count(10, 0.25, "floor_pruned") == 3  # 10 - 7
  assert conventions.kept_count(1000, 0.0015) == 2      # round(1.5)
  assert conventions.kept_count(1000, 0.0015, "floor_pruned") == 2
  for n in (7, 100, 4321):
    for d in (0.0, 0.013, 0.1, 0.5, 0.77, 1.0):
      assert conventions.kept_count(n, d) == int(round(d * n))
      assert conventions.kept_count(n, d, "floor_pruned") == n - int(
          (1.0 - d) * n)
  with pytest.raises(ValueError, match="count_rule='floor'.*Fix"):
    conventions.kept_count(10, 0.5, "floor")


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_select_counts_under_each_rule(scope):
  rng = np.random.default_rng(1)
  scores = {"a": rng.random(37), "b": rng.random((5, 9))}
  s = 0.83
  for rule in conventions.COUNT_RULES:
    m = pruning.select(scores, s, scope=scope, count_rule=rule)
    sizes = ([37 + 45] if scope == "global" else [37, 45])
    kept = ([m.kept()] if scope == "global"
            else [int(m["a"].sum()), int(m["b"].sum())])
    want = [n - int((1.0 - (1.0 - s)) * n) if rule == "floor_pruned"
            else int(round((1.0 - s) * n)) for n in sizes]
    assert kept == want
  # The two rules differ here (82 weights: round(13.94) = 14, 82 - 68 = 14;
  # layerwise b: round(7.65) = 8, 45 - int(37.35) = 8; a: round(6.29) = 6,
  # 37 - int(30.71) = 7), so the option is not a no-op.
  if scope == "layerwise":
    assert pruning.select(scores, s, scope=scope)["a"].sum() == 6
    assert pruning.select(scores, s, scope=scope,
                          count_rule="floor_pruned")["a"].sum() == 7


@pytest.mark.parametrize("kit", KITS)
def test_prune_rounds_use_the_count_rule(kit):
  path = _Path(kit)
  model, _, _ = _net(path, "mlp", True, False)
  n = sum(int(np.prod(t.variable.shape)) for t in path.targets(model))
  s = 0.95  # 87 kernel weights: round(4.35) = 4, 87 - int(82.65) = 5
  assert n == 87
  for rule in conventions.COUNT_RULES:
    snap = [w.copy() for w in model.get_weights()]
    r = path.prune(model, "synflow", s, rounds=3, count_rule=rule)
    model.set_weights(snap)
    assert r.masks.kept() == conventions.kept_count(n, 1.0 - s, rule)
  with pytest.raises(ValueError, match="count_rule='nearest'.*Fix"):
    path.prune(model, "magnitude", 0.5, count_rule="nearest")


# --- scoring_mode -------------------------------------------------------

@pytest.mark.parametrize("kit", KITS)
@pytest.mark.parametrize("arch", ["cnn", "mlp"])
@pytest.mark.parametrize("mode", conventions.SCORING_MODES)
def test_scoring_mode_snip_and_grasp_match_the_tape(kit, arch, mode):
  path = _Path(kit)
  model, x, y = _net(path, arch, True, True)
  training = mode == "training"
  snip = path.score(model, "snip", data=(x, y), scoring_mode=mode)
  ref = _snip_ref(path, model, x, y, training)
  for k in ref:
    np.testing.assert_allclose(snip[k], ref[k], rtol=1e-5,
                               atol=1e-6 * np.abs(ref[k]).max())
  grasp = path.score(model, "grasp", data=(x, y), scoring_mode=mode)
  ref = _grasp_ref(path, model, x, y, training)
  for k in ref:  # ours: -W (H g), the smallest kept
    np.testing.assert_allclose(-grasp[k], ref[k], rtol=1e-4,
                               atol=1e-5 * np.abs(ref[k]).max())
  other = _snip_ref(path, model, x, y, not training)
  assert not np.allclose(other["out/kernel"], snip["out/kernel"], rtol=1e-2)


def test_scoring_mode_is_checked():
  path = _Path("tf_keras")
  model, x, y = _net(path, "mlp", True, False)
  with pytest.raises(ValueError, match="scoring_mode='eval'.*Fix"):
    pruning.prune(model, "snip", 0.5, data=(x, y), scoring_mode="eval")
  with pytest.raises(ValueError, match="scoring_mode='eval'.*Fix"):
    pruning.score(model, "snip", data=(x, y), scoring_mode="eval")


# --- SynFlow's biases ---------------------------------------------------

@pytest.mark.parametrize("kit", KITS)
@pytest.mark.parametrize("arch", ["cnn", "mlp"])
@pytest.mark.parametrize("bias,bn", [(True, True), (False, False)])
@pytest.mark.parametrize("biases", conventions.SYNFLOW_BIASES)
def test_synflow_biases_match_the_formula(kit, arch, bias, bn, biases):
  path = _Path(kit)
  model, _, _ = _net(path, arch, bias, bn)
  got = path.score(model, "synflow", biases=biases)
  ref = _synflow_ref(path, model, biases)
  for k in ref:
    np.testing.assert_allclose(got[k], ref[k], rtol=1e-10)
  if bias and bn:  # the option changes the scores where there is something
    other = _synflow_ref(path, model, "zero" if biases == "abs" else "abs")
    assert not np.allclose(other["c1/kernel" if arch == "cnn" else
                                 "d1/kernel"], got["c1/kernel" if arch == "cnn"
                                                   else "d1/kernel"])


def test_synflow_biases_is_checked():
  model = _net(_Path("tf_keras"), "mlp", True, False)[0]
  with pytest.raises(ValueError, match="biases='one'.*Fix"):
    pruning.score(model, "synflow", biases="one")
  assert pruning.method_options("synflow")["biases"] == "zero"


# --- the reference's rules, end to end ----------------------------------

REFERENCE = dict(scoring_mode="inference", count_rule="floor_pruned")


@pytest.mark.parametrize("kit", KITS)
@pytest.mark.parametrize("arch", ["cnn", "mlp"])
@pytest.mark.parametrize("bias,bn", [(True, True), (False, False)])
@pytest.mark.parametrize("method", ["snip", "grasp", "synflow", "magnitude"])
def test_reference_options_give_the_reference_masks(kit, arch, bias, bn,
                                                    method):
  path = _Path(kit)
  model, x, y = _net(path, arch, bias, bn)
  s, density = 0.8, 1.0 - 0.8
  if method == "snip":
    ref = _snip_ref(path, model, x, y, training=False)
  elif method == "grasp":
    ref = _grasp_ref(path, model, x, y, training=False)
  elif method == "synflow":
    ref = _synflow_ref(path, model, "abs")
  else:
    ref = {k: np.abs(np.asarray(v)) for k, v in _kernels(path, model)}
  _assert_no_near_tie(ref, density)
  want = _reference_masks(ref, density)
  opts = dict(REFERENCE, **(dict(biases="abs", rounds=1)
                            if method == "synflow" else {}))
  result = path.prune(model, method, s, data=(x, y), on_collapse="ignore",
                      **opts)
  for k in want:
    np.testing.assert_array_equal(result.masks[k], want[k], err_msg=k)


# --- config -------------------------------------------------------------

def test_config_fields_reach_prune(shared_data, tmp_path, monkeypatch):
  # pylint: disable=import-outside-toplevel
  del shared_data  # the tiny run reads Fashion-MNIST
  from sbp_tf import config as sbp_config
  from sbp_tf import experiment
  from sbp_tf.training import phases
  from experiment_testlib import tiny_config
  seen = {}

  class Stop(Exception):
    pass

  def capture(model, method, sparsity, **kw):
    seen.update(kw, method=method)
    raise Stop

  monkeypatch.setattr(phases.pruning, "prune", capture)
  cfg = tiny_config()
  cfg.prune.scoring_mode, cfg.prune.count_rule = "inference", "floor_pruned"
  with pytest.raises(Stop):
    experiment.run(cfg, tmp_path / "run")
  assert (seen["scoring_mode"], seen["count_rule"]) == ("inference",
                                                        "floor_pruned")
  seen.clear()
  with pytest.raises(Stop):  # unset: prune's own defaults apply
    experiment.run(tiny_config(), tmp_path / "run2")
  assert "scoring_mode" not in seen and "count_rule" not in seen
  cfg.prune.count_rule = "floor"
  with pytest.raises(sbp_config.ConfigError,
                     match="prune.count_rule='floor' must be None"):
    sbp_config.validate(cfg)
