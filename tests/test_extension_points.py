"""A new method with an option and a new model with a keyword, each added by
one registration and nothing else, reach prune(), the config and a run."""

import json

import numpy as np
import pytest

from sbp_tf import config as sbp_config
from sbp_tf import experiment
from sbp_tf import models
from sbp_tf import pruning
from sbp_tf.compat import keras

from experiment_testlib import tiny_config


# --- The toy method: one class, one option. -------------------------------

class _Power(pruning.Method):
  """``|W|^p``; records the ``p`` it was built with."""
  built_with = []

  def __init__(self, p: float = 1.0):
    self.p = p
    _Power.built_with.append(p)

  def score(self, ctx):
    return {k: np.abs(w) ** self.p for k, w in ctx.weights().items()}


# --- The toy model: one builder, one new keyword. -------------------------

def _mlp(num_classes, input_shape, *, hidden: int = 16, seed: int = None):
  keras.utils.set_random_seed(0 if seed is None else seed)
  inp = keras.Input(input_shape)
  h = keras.layers.Dense(hidden, activation="tanh", name="hidden")(
      keras.layers.Flatten()(inp))
  return keras.Model(inp, keras.layers.Dense(num_classes, name="out")(h),
                     name="toy_mlp")


@pytest.fixture(scope="module")
def registered():
  pruning.register_method("toy_power")(_Power)
  models.register("toy_mlp")(_mlp)
  yield
  # Leave the registries as other test modules expect them.
  # pylint: disable=protected-access
  pruning.scores._REGISTRY.pop("toy_power")
  models.registry._REGISTRY.pop("toy_mlp")


def test_schema_grows_the_new_fields(registered):
  del registered
  cfg = sbp_config.defaults()
  assert cfg.model.options.hidden is None and cfg.prune.options.p is None
  cfg.model.name, cfg.model.options.hidden = "toy_mlp", 24
  cfg.prune.method, cfg.prune.options.p = "toy_power", 2.0
  sbp_config.validate(cfg)
  with pytest.raises(TypeError):
    cfg.model.options.hidden = "wide"  # typed from the annotation
  cfg.model.name = "ffnn"
  with pytest.raises(ValueError, match=r"model\.options\.hidden=24 is not an "
                     "option of model 'ffnn'"):
    sbp_config.validate(cfg)


def test_model_keyword_and_method_option_reach_a_run(registered, shared_data,
                                                     tmp_path):
  del registered, shared_data
  cfg = tiny_config(epochs=1, steps_per_epoch=2)
  cfg.model.name = "toy_mlp"
  cfg.model.options.update(dict(depth=None, width=None, hidden=24))
  cfg.prune.method, cfg.prune.options.p = "toy_power", 3.0
  _Power.built_with.clear()
  metrics = experiment.run(cfg, tmp_path / "run")
  assert _Power.built_with == [3.0]
  report = json.loads((tmp_path / "run" / "prune_report.json").read_text())
  sizes = {r["layer"]: r["weights"] for r in report["layers"]}
  assert sizes["hidden/kernel"] == 28 * 28 * 24  # the keyword took effect
  # |W|^3 ranks like |W|: the masks are magnitude pruning's.
  keras.utils.set_random_seed(cfg.seed)
  ref = models.build("toy_mlp", 10, (28, 28, 1), hidden=24, seed=cfg.seed)
  want = pruning.prune(ref, "magnitude", cfg.prune.sparsity).masks
  got = pruning.Masks.load(str(tmp_path / "run" / "masks.npz"))
  for k in want:
    np.testing.assert_array_equal(got[k], want[k])
  assert metrics["sparsity"] == pytest.approx(cfg.prune.sparsity, abs=1e-3)
