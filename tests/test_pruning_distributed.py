"""MirroredStrategy over 2 logical CPUs gives the single-device masks.

Logical devices must be configured before TensorFlow initialises its devices,
so the comparison runs in a fresh subprocess.
"""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import sbp_tf
from sbp_tf.compat import tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from sbp_tf import pruning

def build():
  keras.utils.set_random_seed(0)
  inp = keras.Input((6, 6, 2))
  h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inp)
  h = keras.layers.Flatten()(h)
  h = keras.layers.Dense(10, activation="tanh", name="d1")(h)
  return keras.Model(inp, keras.layers.Dense(3, name="d2")(h))

rng = np.random.default_rng(0)
x = rng.normal(size=(22, 6, 6, 2)).astype(np.float32)
y = rng.integers(0, 3, 22).astype(np.int32)
# 8 + 8 + 6: the last global batch is uneven across replicas.
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
for method in ("sbp", "grasp"):
  single = pruning.prune(build(), method, 0.8, data=ds, num_batches=3)
  with strategy.scope():
    model = build()
  dist = pruning.prune(model, method, 0.8, data=ds, num_batches=3,
                       strategy=strategy)
  out[method] = dict(
      masks_equal=all(np.array_equal(single.masks[k], dist.masks[k])
                      for k in single.masks),
      max_rel_score_diff=max(
          float(np.max(np.abs(single.scores[k] - dist.scores[k]))
                / np.max(np.abs(single.scores[k]))) for k in single.scores),
      kept=dist.masks.kept(),
      weights_zeroed=int(sum(np.sum(t.variable.numpy() == 0)
                             for t in pruning.prunable_targets(model))),
      size=dist.masks.size())
print("RESULT " + json.dumps(out))
"""


def test_mirrored_strategy_matches_single_device():
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[-1][len("RESULT "):])
  assert out["replicas"] == 2
  for method in ("sbp", "grasp"):
    r = out[method]
    assert r["masks_equal"], (method, r)
    assert r["max_rel_score_diff"] < 1e-4, (method, r)
    assert r["kept"] == round(0.2 * r["size"])
    assert r["weights_zeroed"] == r["size"] - r["kept"]
