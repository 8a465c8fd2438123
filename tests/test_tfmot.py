"""sbp_tf.tfmot: fixed masks in tfmot wrappers, sparse during and after fit."""

import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sbp_tf.compat import keras, tf
import sbp_tf.tfmot as sbp_tfmot
from sbp_tf.pruning.targets import prunable_targets
import tensorflow_model_optimization as tfmot_lib

from tfmot_testlib import LOSS, data, functional, leaked, random_masks, sequential


def _compile(model, lr=0.05):
  model.compile(keras.optimizers.Adam(lr), LOSS)
  return model


def test_wrap_installs_masks_and_zeroes_weights():
  model = functional()
  masks = random_masks(model, 0.3)
  before = {t.key: t.variable.numpy().copy() for t in prunable_targets(model)}
  wrapped = sbp_tfmot.wrap(model, masks)
  # Keys survive wrapping (wrappers are transparent), nested model included.
  assert [t.key for t in prunable_targets(wrapped)] == list(masks)
  held = sbp_tfmot.masks_of(wrapped)
  for key, m in masks.items():
    np.testing.assert_array_equal(held[key], m)
  # Weights are w * m exactly: kept ones untouched, pruned ones zero.
  for t in prunable_targets(wrapped):
    np.testing.assert_array_equal(t.variable.numpy(), before[t.key] * masks[t.key])
  kinds = {type(l).__name__ for l in wrapped.layers}
  assert "PruneLowMagnitude" in kinds
  # tfmot cannot mask depthwise kernels; those get our MaskedLayer.
  assert "MaskedLayer" in kinds
  sub = wrapped.get_layer("sub")
  assert type(sub.layers[0]).__name__ == "PruneLowMagnitude"
  # Same function as the masked plain model.
  x, _ = data(model, 8)
  np.testing.assert_allclose(wrapped(x), model(x), atol=1e-6)


def test_schedule_never_fires():
  sched = sbp_tfmot.FixedMask(0.9)
  for step in (0, 1, 100, 10**6):
    fire, sparsity = sched(tf.constant(step, tf.int64))
    assert not bool(fire)
    assert float(sparsity) == pytest.approx(0.9)
  cfg = sched.get_config()
  assert cfg["class_name"] == "sbp_tf>FixedMask"
  assert sbp_tfmot.FixedMask.from_config(cfg).sparsity == 0.9
  with pytest.raises(ValueError, match="sparsity must be in"):
    sbp_tfmot.FixedMask(1.5)


def test_fit_two_epochs_sparse_everywhere(tmp_path):
  model = functional(seed=1)
  masks = random_masks(model, 0.3, seed=1)
  wrapped = _compile(sbp_tfmot.wrap(model, masks))
  kept_before = {t.key: t.variable.numpy().copy()
                 for t in prunable_targets(wrapped)}
  x, y = data(model, 64)
  epoch_leaks = []
  probe = keras.callbacks.LambdaCallback(
      on_epoch_end=lambda e, l: epoch_leaks.append(leaked(wrapped, masks)))
  ckpt = keras.callbacks.ModelCheckpoint(
      str(tmp_path / "ck_{epoch}_{batch}.h5"), save_weights_only=True,
      save_freq=3)
  hist = wrapped.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False,
                     callbacks=sbp_tfmot.callbacks() + [probe, ckpt])
  assert len(hist.history["loss"]) == 2
  assert len(epoch_leaks) == 2
  for leaks in epoch_leaks:
    assert max(leaks.values()) == 0.0, leaks
  # Masks unchanged, and training did move the kept weights.
  held = sbp_tfmot.masks_of(wrapped)
  for key, m in masks.items():
    np.testing.assert_array_equal(held[key], m)
  moved = [np.abs(t.variable.numpy() - kept_before[t.key]).max()
           for t in prunable_targets(wrapped)]
  assert min(moved) > 0
  # Mid-epoch checkpoints (8 batches per epoch, one every 3) are sparse.
  files = sorted(glob.glob(str(tmp_path / "ck_*.h5")))
  assert len(files) >= 4
  fresh = sbp_tfmot.wrap(functional(seed=7), masks)
  for f in files:
    fresh.load_weights(f)
    assert max(leaked(fresh, masks).values()) == 0.0, f


def test_tfmot_alone_leaks_mid_epoch(tmp_path):
  """Control for the test above: tfmot's own re-masking (issue #206) is not
  enough, pruned weights are nonzero after an optimizer step."""
  model = sequential(seed=2)
  masks = random_masks(model, 0.3, seed=2)
  plain = tfmot_lib.sparsity.keras.prune_low_magnitude(
      model, pruning_schedule=sbp_tfmot.FixedMask())
  for layer in plain.layers:
    (w, m, _), = layer.pruning_vars
    key = layer.layer.name + "/kernel"
    m.assign(masks[key])
    w.assign(w * masks[key])
  _compile(plain)
  x, y = data(model, 32)
  seen = []
  probe = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda b, l: seen.append(max(leaked(plain, masks).values())))
  plain.fit(x, y, batch_size=8, epochs=1, verbose=0,
            callbacks=[tfmot_lib.sparsity.keras.UpdatePruningStep(), probe])
  assert max(seen[:-1]) > 0  # mid-epoch: gradients flowed into pruned weights


def test_keep_sparse_reinstalls_and_retraces():
  model = sequential(seed=3)
  masks = random_masks(model, 0.5, seed=3)
  wrapped = _compile(sbp_tfmot.wrap(model, masks))
  # Drop the constraints (a model loaded by plain keras lacks them) and let
  # the train function be traced without them: pruned weights then leak.
  for t in prunable_targets(wrapped):
    t.variable._constraint = None  # pylint: disable=protected-access
  x, y = data(model, 16)
  seen = []
  probe = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda b, l: seen.append(max(leaked(wrapped, masks).values())))
  wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[
      tfmot_lib.sparsity.keras.UpdatePruningStep(), probe])
  assert seen[0] > 0
  # KeepSparse must reinstall them and rebuild the cached train function.
  seen.clear()
  wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=sbp_tfmot.callbacks(check=True) + [probe])
  assert seen and max(seen) == 0.0


def test_fit_without_callbacks_fails_in_one_line_naming_them():
  """tfmot alone fails inside the first train step with a ~50-line graph
  error; a wrapped model refuses before any step, naming our callbacks."""
  model = functional(seed=6)
  wrapped = _compile(sbp_tfmot.wrap(model, random_masks(model, 0.5, seed=6)))
  x, y = data(model, 16)
  before = [w.copy() for w in wrapped.get_weights()]
  for kwargs in ({}, {"callbacks": [sbp_tfmot.KeepSparse()]}):
    with pytest.raises(ValueError) as err:
      wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0, **kwargs)
    assert "\n" not in str(err.value)
    assert "Fix: pass callbacks=sbp_tf.tfmot.callbacks()" in str(err.value)
  for a, b in zip(wrapped.get_weights(), before):  # nothing trained
    np.testing.assert_array_equal(a, b)
  # Positional callbacks (fit's 6th argument) count like the keyword.
  wrapped.fit(x, y, 8, 1, 0, sbp_tfmot.callbacks())
  assert int(wrapped.optimizer.iterations.numpy()) == 2
  # A plain model from strip trains without them.
  stripped = _compile(sbp_tfmot.strip(wrapped))
  assert type(stripped) is type(model)  # pylint: disable=unidiomatic-typecheck
  stripped.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_strip_keeps_zeros_and_loads_without_custom_objects(tmp_path):
  model = functional(seed=4)
  masks = random_masks(model, 0.2, seed=4)
  wrapped = _compile(sbp_tfmot.wrap(model, masks))
  x, y = data(model, 16)
  wrapped.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=sbp_tfmot.callbacks())
  stripped = sbp_tfmot.strip(wrapped)
  assert not any(isinstance(l, keras.layers.Wrapper) for l in stripped.layers)
  assert not any(isinstance(l, keras.layers.Wrapper)
                 for l in stripped.get_layer("sub").layers)
  path = str(tmp_path / "stripped.keras")
  stripped.save(path)
  loaded = keras.models.load_model(path)  # no custom objects
  assert max(leaked(loaded, masks).values()) == 0.0
  np.testing.assert_allclose(loaded(x), wrapped(x), atol=1e-6)
  assert sbp_tfmot.unwrap is sbp_tfmot.strip


def test_bad_inputs_raise_before_wrapping():
  model = sequential()
  other = functional()
  with pytest.raises(ValueError, match="masks for a different model.*'c1/kernel'"):
    sbp_tfmot.wrap(model, random_masks(other))
  masks = random_masks(model)
  masks["h1/kernel"] = masks["h1/kernel"][:3]
  with pytest.raises(ValueError, match=r"'h1/kernel' has shape \(3, 16\).*\(6, 16\)"):
    sbp_tfmot.wrap(model, masks)
  with pytest.raises(ValueError, match="missing prunable targets 'logits/kernel'"):
    sbp_tfmot.wrap(model, {"h1/kernel": np.ones((6, 16), np.float32)})
  half = random_masks(model)
  half["h1/kernel"] = half["h1/kernel"] * 0.5
  with pytest.raises(ValueError, match="other than 0 and 1"):
    sbp_tfmot.wrap(model, half)
  with pytest.raises(TypeError, match="must be a Mapping"):
    sbp_tfmot.wrap(model, [np.ones((6, 16))])
  flat = keras.Sequential([keras.layers.Flatten(input_shape=(2, 2)),
                           keras.layers.Activation("relu")])
  with pytest.raises(ValueError, match="has nothing prunable"):
    sbp_tfmot.wrap(flat, {})
  # allow_missing leaves the missing layer dense.
  part = sbp_tfmot.wrap(model, {"h1/kernel": np.ones((6, 16), np.float32)},
                        allow_missing=True)
  assert list(sbp_tfmot.masks_of(part)) == ["h1/kernel"]


_MIRRORED = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import sbp_tf
    from sbp_tf.compat import tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import sbp_tf.tfmot as T
    import sbp_tf.masking as M
    from tfmot_testlib import LOSS, data, functional, leaked, random_masks
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {{"replicas": strategy.num_replicas_in_sync}}
    for name, wrap, cbs in (("tfmot", T.wrap, T.callbacks),
                            ("masking", M.wrap, lambda: [])):
      with strategy.scope():
        model = functional(seed=5)
        masks = random_masks(model, 0.3, seed=5)
        w = wrap(model, masks)
        w.compile(keras.optimizers.Adam(0.05), LOSS)
      x, y = data(model, 64)
      leaks = []
      probe = keras.callbacks.LambdaCallback(
          on_train_batch_end=lambda b, l: leaks.append(max(leaked(w, masks).values())))
      h = w.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                callbacks=cbs() + [probe])
      held = M.wrapper_masks(w)
      same = all(np.array_equal(held[k][1].numpy(), m) for k, m in masks.items())
      out[name] = {{"loss": h.history["loss"], "max_leak": max(leaks),
                    "steps": len(leaks), "masks_same": same}}
    print("RESULT" + json.dumps(out))
""")


def test_mirrored_strategy_two_logical_cpus(tmp_path):
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  script = tmp_path / "mirrored.py"
  script.write_text(_MIRRORED.format(repo=repo, tests=os.path.join(repo, "tests")))
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, str(script)], capture_output=True,
                        text=True, env=env, timeout=300)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[-1][len("RESULT"):])
  assert out["replicas"] == 2
  for name in ("tfmot", "masking"):
    res = out[name]
    assert res["steps"] == 8 and res["max_leak"] == 0.0, res
    assert res["masks_same"], res
    assert all(np.isfinite(res["loss"])) and len(res["loss"]) == 2
  # Both paths train the same masked network identically, replicas or not.
  np.testing.assert_allclose(out["tfmot"]["loss"], out["masking"]["loss"],
                             rtol=1e-5)
