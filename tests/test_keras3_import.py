"""The import story: user code on Keras 3 imports sbp_tf.keras3 in a fresh
process and keeps Keras 3; the JAX backend runs the backend-free parts."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

_USER_CODE = r"""
import json, os, sys
import keras                                  # the user's Keras 3
from sbp_tf import keras3
import keras as again
import tensorflow as tf
model = keras3.models.build("ffnn", 10, (4,), depth=1, width=8, seed=0)
mine = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
objs = [model, mine] + list(model.layers) + list(mine.layers) + [
    l.kernel_initializer for l in model.layers if hasattr(l, "kernel")]
print(json.dumps({
    "keras": keras.__version__, "again": again is keras,
    "modules": sorted({type(o).__module__.split(".")[0] for o in objs}),
    "tf_keras": tf.keras.__name__.split(".")[0],
    "legacy": os.environ.get("TF_USE_LEGACY_KERAS")}))
"""


def _run(code, **env):
  full = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
  full.pop("TF_USE_LEGACY_KERAS", None)  # a user's fresh process
  full.update(env)
  out = subprocess.run([sys.executable, "-c", code], env=full, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_user_keras_stays_keras3_and_models_hold_no_tf_keras_objects():
  got = _run(_USER_CODE)
  assert got["keras"].startswith("3.") and got["again"]
  assert got["modules"] == ["keras", "sbp_tf"]  # sbp_tf: its Keras 3 classes
  # Documented side effect of `import sbp_tf`: tf.keras is tf_keras.
  assert got["tf_keras"] == "tf_keras" and got["legacy"] == "1"


_TF_KERAS_CODE = r"""
import json, sys
import numpy as np
from sbp_tf import models, pruning
x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
y = np.arange(8) % 4
model = models.build("resnet32", 4, (8, 8, 3), width_multiplier=0.25, seed=0)
before = "keras" in sys.modules
r = pruning.prune(model, "sbp", 0.9, data=(x, y))
print(json.dumps({"before": before, "after": "keras" in sys.modules,
                  "connected": r.diagnostics["connected"]}))
"""


def test_pruning_a_tf_keras_model_does_not_import_keras3():
  # Importing Keras 3 for nothing cost a fresh process's first prune 1.2 s
  # (the Keras 3 batch-norm switch looked up its class by importing it).
  got = _run(_TF_KERAS_CODE)
  assert got == {"before": False, "after": False, "connected": True}


_JAX_CODE = r"""
import json
import numpy as np
import keras
from sbp_tf import keras3
x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
y = np.arange(32) % 4
model = keras3.models.build("ffnn", 4, (8,), depth=2, width=16, seed=0)
r = keras3.prune(model, "magnitude", 0.8)
keras3.mask(model, r.masks)
model.compile(keras.optimizers.Adam(1e-2),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
pruned_max = max(float(np.abs(t.variable.numpy()[r.masks[t.key] == 0]).max())
                 for t in keras3.prunable_targets(model))
try:
  keras3.prune(model, "sbp", 0.8, data=(x, y))
  err = None
except NotImplementedError as e:
  err = str(e)
print(json.dumps({"backend": keras.backend.backend(), "kept": r.masks.kept(),
                  "size": r.masks.size(), "pruned_max": pruned_max,
                  "sbp_error": err}))
"""


def test_jax_backend_masks_train_and_gradient_methods_say_why():
  if importlib.util.find_spec("jax") is None:
    pytest.skip("jax is not installed in this environment (it is installable "
                "from the registry, `pip install jax`, but not a dependency "
                "of sbp_tf); the JAX backend is checked where it is present.")
  got = _run(_JAX_CODE, KERAS_BACKEND="jax")
  assert got["backend"] == "jax"
  assert got["kept"] == round(0.2 * got["size"])
  assert got["pruned_max"] == 0.0
  assert "TensorFlow backend" in got["sbp_error"]
