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

def build_two():  # two inputs, two outputs, a loss per output (issue 16)
  keras.utils.set_random_seed(0)
  img, vec = keras.Input((6, 6, 2), name="img"), keras.Input((3,), name="vec")
  h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, name="c1")(img))
  h = keras.layers.Concatenate()([h, keras.layers.Dense(4, name="v1")(vec)])
  return keras.Model([img, vec], [keras.layers.Dense(3, name="cls")(h),
                                  keras.layers.Dense(1, name="reg")(h)])

v = rng.normal(size=(22, 3)).astype(np.float32)
z = rng.normal(size=(22, 1)).astype(np.float32)
ds2 = tf.data.Dataset.from_tensor_slices(((x, v), (y, z))).batch(8)
loss = {"cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "reg": keras.losses.MeanSquaredError()}
single = pruning.prune(build_two(), "sbp", 0.8, data=ds2, num_batches=3,
                       loss=loss, loss_weights={"cls": 1.0, "reg": 0.5})
with strategy.scope():
  model = build_two()
dist = pruning.prune(model, "sbp", 0.8, data=ds2, num_batches=3, loss=loss,
                     loss_weights={"cls": 1.0, "reg": 0.5}, strategy=strategy)
out["two_io"] = dict(
    masks_equal=all(np.array_equal(single.masks[k], dist.masks[k])
                    for k in single.masks),
    max_rel_score_diff=max(
        float(np.max(np.abs(single.scores[k] - dist.scores[k]))
              / np.max(np.abs(single.scores[k]))) for k in single.scores),
    kept=dist.masks.kept(), size=dist.masks.size(),
    weights_zeroed=int(sum(np.sum(t.variable.numpy() == 0)
                           for t in pruning.prunable_targets(model))))
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
  # sbp and grasp on one model; sbp on a two-input/two-output model with a
  # loss per output and loss weights.
  for method in ("sbp", "grasp", "two_io"):
    r = out[method]
    assert r["masks_equal"], (method, r)
    assert r["max_rel_score_diff"] < 1e-4, (method, r)
    assert r["kept"] == round(0.2 * r["size"])
    assert r["weights_zeroed"] == r["size"] - r["kept"]
