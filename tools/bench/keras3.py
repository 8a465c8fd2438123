"""Section ``keras3``: the Keras 3 path's saliency cost and masked-fit
throughput beside the tf_keras path's, same model, batch and data.

Two figures per path (``tf_keras``: ``sbp_tf.pruning`` + tfmot wrappers;
``keras3``: ``sbp_tf.keras3``, masks as kernel constraints):

* ``ratio_to_step``: ``prune(model, "sbp", 0.9)`` time over one dense train
  step, on the saliency section's first model and batch;
* ``images_per_s`` of ``model.fit`` with masks (and dense), on the training
  section's model, batch and cached data; ``ratio_to_dense`` per path.

Both paths are measured here, interleaved round by round, so the ratio
between them is paired against the machine's drift.
"""

import time
from typing import Any, Dict, List

import numpy as np

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import keras3 as k3
from sbp_tf import pruning
from sbp_tf import tfmot
from tools import bench
from tools.bench import common
from tools.bench import timing
from tools.bench import training

import keras  # noqa: E402  (Keras 3; tf.keras is tf_keras after sbp_tf)

METHOD, SPARSITY = "sbp", 0.9
PATHS = ("tf_keras", "keras3")


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Rounds; the models and batches are the saliency/training sections'."""
  del quick
  return {"keras3_rounds": repeats}


def _build3(name, shape, ncls, options, seed):
  keras.utils.set_random_seed(seed)
  opts = dict(options)
  if "seed" in k3.models.options(name):
    opts.setdefault("seed", seed)
  return k3.models.build(name, ncls, tuple(shape), **opts)


def _compile3(model):
  """Keras 3 twin of ``common.compile_model``: SGD(0.01, momentum 0.9)."""
  model.compile(
      optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def _saliency_pair(settings):
  """{path: (model, step(), prune(), restore())} on the saliency section's
  first model and batch."""
  name, size, shape, ncls, options = settings.saliency_models[0][:5]
  x, y, source = common.batch(settings.seed, settings.data_dir, size, shape,
                              ncls)
  m2 = common.build_model(name, shape, ncls, options, settings.seed)
  m3 = _build3(name, shape, ncls, options, settings.seed)
  common.compile_model(m2)
  _compile3(m3)
  kw = dict(data=(x, y), seed=settings.seed)
  out = {}
  for path, m, prune in (
      ("tf_keras", m2, lambda m=m2: pruning.prune(
          m, METHOD, SPARSITY, loss=pruning.default_loss(), **kw)),
      ("keras3", m3, lambda m=m3: k3.prune(m, METHOD, SPARSITY, **kw))):
    w0 = m.get_weights()
    out[path] = (m, lambda m=m: m.train_on_batch(x, y), prune,
                 lambda m=m, w=w0: m.set_weights(w))
  return out, dict(model=name, options=options, batch_size=size,
                   input_shape=list(shape), data=source)


def _saliency(settings) -> List[Dict[str, Any]]:
  """Per path: prune / dense train step, paired per round."""
  pair, info = _saliency_pair(settings)
  first = {}
  for path, (_, step, prune, restore) in pair.items():
    for _ in range(3):  # warm-up: the compiled train step
      step()
    restore()
    first[path] = timing.time_call(prune)
  steps = {p: [] for p in pair}
  prunes = {p: [] for p in pair}
  for _ in range(settings.keras3_rounds):
    for path, (_, step, prune, restore) in pair.items():
      restore()
      steps[path].append(float(np.median([timing.time_call(step)
                                          for _ in range(2)])))
      restore()
      prunes[path].append(timing.time_call(prune))
  return [dict(info, path=p, method=METHOD,
               train_step_s=timing.summarize(steps[p]),
               prune_steady_s=timing.summarize(prunes[p]),
               prune_first_s=first[p],
               ratio_to_step=timing.ratio_stats(prunes[p], steps[p]))
          for p in pair]


class _Timer3(keras.callbacks.Callback):
  """Keras 3 twin of ``common``'s fit timer: perf_counter at batch ends."""

  def on_epoch_begin(self, epoch, logs=None):
    self.ends = []

  def on_train_batch_end(self, batch, logs=None):
    self.ends.append(time.perf_counter())


def _fit_rate(model, ds, steps, batch_size, callbacks) -> float:
  """Steady images/s of one ``fit`` epoch (its first step excluded)."""
  if isinstance(model, keras.Model):
    timer = _Timer3()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0,
              shuffle=False, callbacks=list(callbacks) + [timer])
    return (len(timer.ends) - 1) * batch_size / (timer.ends[-1]
                                                  - timer.ends[0])
  return common.fit_rate(model, ds, steps, batch_size, callbacks)


def _fit_variants(settings):
  """(path, variant, model, callbacks): dense and masked, per path."""
  name, shape, ncls, options = settings.train_model
  b2 = lambda: common.build_model(name, shape, ncls, options, settings.seed)
  b3 = lambda: _build3(name, shape, ncls, options, settings.seed)
  # The cost does not depend on which weights are kept: magnitude masks.
  masks = pruning.prune(b2(), "magnitude", SPARSITY, seed=settings.seed).masks
  masked3 = b3()
  k3.mask(masked3, masks)  # same layer names and keys on both paths
  out = [("tf_keras", "dense", b2(), []),
         ("tf_keras", "masked", tfmot.wrap(b2(), masks),
          list(tfmot.callbacks())),
         ("keras3", "dense", b3(), []), ("keras3", "masked", masked3, [])]
  for path, _, model, _ in out:
    (_compile3 if path == "keras3" else common.compile_model)(model)
  return out


def _throughput(settings) -> List[Dict[str, Any]]:
  """Per path and variant: fit images/s and ratio to the path's dense."""
  b, steps = settings.train_batch, settings.train_steps
  ds, source = common.cached_train_data(settings, b, steps,
                                        *settings.train_model[1:3])
  variants = _fit_variants(settings)
  for _, _, model, cbs in variants:  # warm-up: tracing and the data cache
    _fit_rate(model, ds, steps, b, cbs)
  rates = {(p, v): [] for p, v, _, _ in variants}
  for _ in range(settings.keras3_rounds):
    for p, v, model, cbs in variants:
      rates[(p, v)].append(_fit_rate(model, ds, steps, b, cbs))
  return [{"path": p, "variant": v, "model": settings.train_model[0],
           "batch_size": b, "steps_per_round": steps, "data": source,
           "images_per_s": timing.summarize(rates[(p, v)], "images/s"),
           "ratio_to_dense": timing.ratio_stats(rates[(p, v)],
                                                rates[(p, "dense")])}
          for p, v, _, _ in variants]


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """Saliency/step ratio and masked-fit images/s on both paths.

  ``keras3_to_tf_keras``: Keras 3 over tf_keras, per figure (medians).
  """
  saliency = _saliency(settings)
  ctx.progress({"saliency_rows": saliency, "partial": True})
  fit = _throughput(settings)
  by = {(r["path"], r["variant"]): r for r in fit}
  sal = {r["path"]: r for r in saliency}
  med = lambda s: s["median"]
  return {
      "saliency_rows": saliency, "fit_rows": fit,
      "keras3_to_tf_keras": {
          "ratio_to_step": med(sal["keras3"]["ratio_to_step"])
                           / med(sal["tf_keras"]["ratio_to_step"]),
          "masked_images_per_s": med(by[("keras3", "masked")]["images_per_s"])
                                 / med(by[("tf_keras", "masked")][
                                     "images_per_s"])},
      "notes": ["Both paths measured in this section, interleaved per round; "
                "models and batches of the saliency (first model) and "
                "training sections; masked = tfmot wrappers (tf_keras) or "
                "keras3.mask constraints (keras3)."]}


def markdown(sec: Dict[str, Any]) -> List[str]:
  """Two tables: saliency ratio per path, fit throughput per path/variant."""
  r = sec["keras3_to_tf_keras"]
  return [
      f"Keras 3 / tf_keras: saliency ratio x{common.fmt(r['ratio_to_step'])}"
      f", masked fit images/s x{common.fmt(r['masked_images_per_s'])}.", "",
      *common.table(
          ["path", "model", "batch", "method", "train step s", "prune s",
           "ratio to step"],
          [[x["path"], x["model"], str(x["batch_size"]), x["method"],
            common.stat(x["train_step_s"]), common.stat(x["prune_steady_s"]),
            common.stat(x["ratio_to_step"])] for x in sec["saliency_rows"]]),
      "",
      *common.table(
          ["path", "variant", "model", "batch", "images/s", "ratio to dense"],
          [[x["path"], x["variant"], x["model"], str(x["batch_size"]),
            common.stat(x["images_per_s"]), common.stat(x["ratio_to_dense"])]
           for x in sec["fit_rows"]])]


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  """Keras 3 masked fit >= training.MIN_RATIO_TO_DENSE of its dense fit."""
  for row in sec.get("fit_rows", []):
    if row["path"] == "keras3" and row["variant"] == "masked":
      r = row["ratio_to_dense"]
      return [bench.target(
          "masked training throughput, keras3", "images/s / dense images/s",
          r["median"], ">=", training.MIN_RATIO_TO_DENSE,
          [r["min"], r["max"]])]
  return []


bench.register(bench.Section(
    "keras3", run, markdown, targets=targets, presets=presets, order=60,
    # Before saliency (the longest), after the other sections.
    run_order=900))
