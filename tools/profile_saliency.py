r"""Where a saliency call's time goes: the profile behind benchmark.md's gaps.

Times, on one model and batch, interleaved per round and reported as medians:

* ``train_step``: one dense ``train_on_batch`` (the benchmark's reference);
* ``gradient``: the compiled ``dL/dW`` pass SBP scores with;
* ``g_and_hg_reverse``: GraSP's one-pass ``(g, H g)`` by reverse-over-reverse
  differentiation (what ``sbp_tf.pruning`` runs), traced with unfused
  batch/layer normalization as the package traces it
  (``compat.unfused_normalization``: the fused op's second-order gradient
  is inexact);
* ``hg_forward_over_reverse``: ``H g`` by a forward-mode accumulator over the
  gradient tape, the alternative, given ``g`` (also unfused);
* ``g_then_hg_forward_over_reverse``: the alternative's whole cost, ``g``
  first, then its ``H g`` (GraSP's tangent is ``g`` itself, so forward mode
  cannot start before a gradient pass);
* ``g_and_hg_reverse_fused``: the one-pass reverse-over-reverse traced with
  the fused normalization (what unfusing costs, though inexact);
* ``synflow_reference_f64``: the least a SynFlow round can cost: one
  forward+backward of a single all-ones example through the float64 clone
  of the linearized network (traced; weights already set);
* ``synflow_round``: one SynFlow round as ``prune`` runs it (the cached
  runner: weights set from the model in the graph, ``R``, ``dR/dW``,
  ``|W dR/dW|`` moved to the host);
* ``synflow_score_by_name``: ``pruning.score(model, 'synflow')``;
* ``prune_overhead``: ``prune(model, 'magnitude', s)``, i.e. everything a
  prune call does besides scoring (threshold, masks, diagnostics, report).

So ``prune('sbp') ~ gradient + prune_overhead`` and
``prune('grasp') ~ g_and_hg_reverse + prune_overhead``.

Usage::

    python tools/profile_saliency.py --model=resnet32 --batch_size=128
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# Selects Keras 2 before TensorFlow is imported.
import sbp_tf  # noqa: F401,E402

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from sbp_tf import files  # noqa: E402


def profile(model_name="resnet32", batch_size=128, repeats=3, sparsity=0.9,
            temperature=200.0, seed=0, **options):
  """Times each figure; returns seconds, medians, ratios to the train step.

  Also returns ``hg_max_rel_diff``: max |Hg_rev - Hg_fwd| / max |Hg_rev|
  between the two differentiation modes (they must agree).
  ``options`` go to ``sbp_tf.models.build``.
  """
  from sbp_tf import compat, models, pruning  # pylint: disable=g-import-not-at-top
  from sbp_tf.compat import keras, tf  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  input_shape = (224, 224, 3) if "imagenet" in model_name else (32, 32, 3)
  m = models.build(model_name, num_classes=1000 if "imagenet" in model_name
                   else 10, input_shape=input_shape, **options)
  shape = (batch_size,) + tuple(int(d) for d in m.input_shape[1:])
  rng = np.random.default_rng(seed)
  x = tf.constant(rng.random(shape, dtype=np.float32))
  y = tf.constant(rng.integers(0, int(m.output_shape[-1]), batch_size)
                  .astype(np.int32))
  m.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=pruning.default_loss())
  w0 = m.get_weights()
  variables = [t.variable for t in pruning.prunable_targets(m)]
  loss_fn = pruning.default_loss()

  def loss():
    return loss_fn(y, tf.cast(m(x, training=True), tf.float32) / temperature)

  @tf.function
  def gradient():
    with tf.GradientTape() as tape:
      l = loss()
    return tape.gradient(l, variables)

  def reverse_over_reverse():
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        l = loss()
      g = inner.gradient(l, variables)
      z = tf.add_n([tf.reduce_sum(a * tf.stop_gradient(a)) for a in g])
    return g, outer.gradient(z, variables)

  g_and_hg_reverse = tf.function(reverse_over_reverse)
  g_and_hg_reverse_fused = tf.function(reverse_over_reverse)

  @tf.function
  def hg_forward_over_reverse(g):
    with tf.autodiff.ForwardAccumulator(variables, g) as acc:
      with tf.GradientTape() as tape:
        l = loss()
      grads = tape.gradient(l, variables)
    return acc.jvp(grads)

  def fetch(out):
    for t in tf.nest.flatten(out):
      t.numpy()

  g = gradient()
  g_and_hg_reverse_fused()  # traced fused
  with compat.unfused_normalization(m):  # traced as the package traces them
    hg_rev = g_and_hg_reverse()[1]
    hg_fwd = hg_forward_over_reverse(g)
  scale = max(float(tf.reduce_max(tf.abs(a))) for a in hg_rev)
  diff = max(float(tf.reduce_max(tf.abs(a - b)))
             for a, b in zip(hg_rev, hg_fwd)) / max(scale, 1e-300)
  kit = pruning.kit.tf_keras()
  targets = kit.prunable_targets(m)
  syn_run = pruning.scores._runner(m, targets, kit, "float64")
  shapes = pruning.scores.input_shapes(m)
  clone, _, _, _, kernels = pruning.scores._float64_clone(m, targets, shapes,
                                                          kit)
  ones = pruning.scores._all_ones(clone, shapes, 1)

  @tf.function(autograph=False)
  def synflow_reference_f64():
    with tf.GradientTape() as tape:
      r = tf.add_n([tf.reduce_sum(o) for o in
                    tf.nest.flatten(clone(ones, training=False))])
    return r, tape.gradient(r, kernels)

  figures = {
      "train_step": lambda: m.train_on_batch(x, y),
      "gradient": lambda: fetch(gradient()),
      "g_and_hg_reverse": lambda: fetch(g_and_hg_reverse()),
      "hg_forward_over_reverse": lambda: fetch(hg_forward_over_reverse(g)),
      "g_then_hg_forward_over_reverse": lambda: fetch(
          hg_forward_over_reverse(gradient())),
      "g_and_hg_reverse_fused": lambda: fetch(g_and_hg_reverse_fused()),
      "synflow_reference_f64": lambda: fetch(synflow_reference_f64()),
      "synflow_round": lambda: syn_run({}),
      "synflow_score_by_name": lambda: pruning.score(m, "synflow"),
      "prune_overhead": lambda: pruning.prune(m, "magnitude", sparsity,
                                              on_collapse="ignore"),
  }
  for fn in figures.values():  # warm-up: tracing excluded
    fn()
    m.set_weights(w0)
  times = {k: [] for k in figures}
  for _ in range(repeats):
    for k, fn in figures.items():
      t0 = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - t0)
      m.set_weights(w0)
  med = {k: float(np.median(v)) for k, v in times.items()}
  ratios = {k: med[k] / med["train_step"] for k in med}
  return {"model": model_name, "batch_size": batch_size, "repeats": repeats,
          "seconds": times, "median_s": med, "ratio_to_train_step": ratios,
          "hg_max_rel_diff": diff}


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model", "resnet32", "sbp_tf.models name.")
  flags.DEFINE_integer("batch_size", 128, "Batch size.")
  flags.DEFINE_integer("repeats", 3, "Interleaved timed rounds.")
  flags.DEFINE_string("out", None, "Optional JSON output path.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}; use --flags.")
  res = profile(FLAGS.model, FLAGS.batch_size, FLAGS.repeats)
  print(f"{res['model']}, batch {res['batch_size']}, median of "
        f"{res['repeats']} interleaved rounds:")
  for k, v in res["median_s"].items():
    print(f"  {k:24s} {v:8.3f} s  {res['ratio_to_train_step'][k]:6.2f}x "
          "train step")
  print(f"  Hg reverse vs forward-over-reverse: max rel diff "
        f"{res['hg_max_rel_diff']:.2e}")
  if FLAGS.out:
    files.write_json(FLAGS.out, res)


if __name__ == "__main__":
  define_flags()
  app.run(main)
