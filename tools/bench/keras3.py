"""Section ``keras3``: the Keras 3 path's saliency cost and masked-fit
throughput beside the tf_keras path's, same model, batch and data.

Two figures per path (``tf_keras``: ``sbp_tf.pruning`` + tfmot wrappers;
``keras3``: ``sbp_tf.keras3``, masks as kernel constraints):

* ``ratio_to_step``: ``prune(model, method, 0.9)`` time over one dense
  train step, for every method of the saliency section (SynFlow at its
  rounds), on the saliency section's first model and batch; and the prune
  time of Keras 3 over tf_keras's, paired per round (target <= 1.10, issue
  24), beside the two paths' dense train step ratio (Keras 3's own layers);
* ``images_per_s`` of ``model.fit`` with masks (and dense), on the training
  section's model, batch and cached data; ``ratio_to_dense`` per path.

Both paths are measured here, interleaved round by round, so the ratio
between them is paired against the machine's drift.
"""

import functools
import time
from typing import Any, Dict, List

import numpy as np

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import keras3 as k3
from sbp_tf import pruning
from sbp_tf import tfmot
from tools import bench
from tools.bench import common
from tools.bench import saliency
from tools.bench import timing
from tools.bench import training

import keras  # noqa: E402  (Keras 3; tf.keras is tf_keras after sbp_tf)

SPARSITY = 0.9
# Keras 3's prune time over tf_keras's for the same model (issue 24).
MAX_KERAS3_TO_TF_KERAS = 1.10


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  """Rounds and methods; the models and batches are the saliency/training
  sections'. ``--quick`` times two methods (one gradient, one data-free)."""
  return {"keras3_rounds": repeats,
          "keras3_methods": (["sbp", "magnitude"] if quick else
                             ["sbp", "grasp", "synflow", "magnitude",
                              "random"])}


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
  """{path: (step(), {method: prune()}, restore())} on the saliency
  section's first model and batch; the same seed gives both paths the
  same initial weights (the initializers draw identically)."""
  name, size, shape, ncls, options = settings.saliency_models[0][:5]
  x, y, source = common.batch(settings.seed, settings.data_dir, size, shape,
                              ncls)
  m2 = common.build_model(name, shape, ncls, options, settings.seed)
  m3 = _build3(name, shape, ncls, options, settings.seed)
  common.compile_model(m2)
  _compile3(m3)
  out = {}
  for path, m, prune_fn in (("tf_keras", m2, pruning.prune),
                            ("keras3", m3, k3.prune)):
    prunes = {}
    for method in settings.keras3_methods:
      kw = saliency.prune_kwargs(method, settings, x, y,
                                 settings.synflow_rounds)
      if path == "keras3":
        kw.pop("loss", None)  # its default: the same loss, Keras 3's class
      prunes[method] = functools.partial(prune_fn, m, method, SPARSITY, **kw)
    w0 = m.get_weights()
    out[path] = (lambda m=m: m.train_on_batch(x, y), prunes,
                 lambda m=m, w=w0: m.set_weights(w))
  return out, dict(model=name, options=options, batch_size=size,
                   input_shape=list(shape), data=source)


def _saliency(settings) -> List[Dict[str, Any]]:
  """Per path and method: prune / dense train step, paired per round."""
  pair, info = _saliency_pair(settings)
  first = {}
  for path, (step, prunes, restore) in pair.items():
    for _ in range(3):  # warm-up: the compiled train step
      step()
    for method, prune in prunes.items():
      restore()
      first[(path, method)] = timing.time_call(prune)
  steps = {p: [] for p in pair}
  times = {k: [] for k in first}
  for _ in range(settings.keras3_rounds):
    for path, (step, prunes, restore) in pair.items():
      restore()
      steps[path].append(float(np.median([timing.time_call(step)
                                          for _ in range(2)])))
      for method, prune in prunes.items():
        restore()
        times[(path, method)].append(timing.time_call(prune))
  rounds = lambda m: settings.synflow_rounds if m == "synflow" else 1
  return [dict(info, path=p, method=m, rounds=rounds(m),
               train_step_s=timing.summarize(steps[p]),
               prune_steady_s=timing.summarize(times[(p, m)]),
               prune_first_s=first[(p, m)],
               ratio_to_step=timing.ratio_stats(times[(p, m)], steps[p]))
          for p, m in times]


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
  sal = _saliency(settings)
  ctx.progress({"saliency_rows": sal, "partial": True})
  fit = _throughput(settings)
  by = {(r["path"], r["variant"]): r for r in fit}
  med = lambda s: s["median"]
  return {
      "saliency_rows": sal, "fit_rows": fit,
      "keras3_to_tf_keras": {
          "by_method": _between(sal),
          "masked_images_per_s": med(by[("keras3", "masked")]["images_per_s"])
                                 / med(by[("tf_keras", "masked")][
                                     "images_per_s"])},
      "notes": ["Both paths measured in this section, interleaved per round; "
                "models and batches of the saliency (first model) and "
                "training sections; masked = tfmot wrappers (tf_keras) or "
                "keras3.mask constraints (keras3)."]}


def _between(rows) -> Dict[str, Dict[str, Any]]:
  """Per method: Keras 3 over tf_keras of the prune time and of the dense
  train step (paired per round), and of the ratio to each path's step."""
  by = {(r["path"], r["method"]): r for r in rows}
  out = {}
  for (path, method), k3_row in by.items():
    if path != "keras3":
      continue
    tk = by[("tf_keras", method)]
    pair = lambda f: timing.ratio_stats(k3_row[f]["samples"],
                                        tk[f]["samples"])
    out[method] = {
        "prune_s": pair("prune_steady_s"), "train_step_s": pair("train_step_s"),
        "ratio_to_step": k3_row["ratio_to_step"]["median"]
                         / tk["ratio_to_step"]["median"]}
  return out


def markdown(sec: Dict[str, Any]) -> List[str]:
  """Two tables: saliency ratio per path, fit throughput per path/variant."""
  r = sec["keras3_to_tf_keras"]
  return [
      f"Keras 3 / tf_keras, masked fit images/s "
      f"x{common.fmt(r['masked_images_per_s'])}; prune time per method "
      "(paired per round) beside the two paths' dense train step, which "
      "measures Keras 3's own layers:", "",
      *common.table(
          ["method", "Keras 3 / tf_keras prune s", "Keras 3 / tf_keras "
           "train step s", "ratio to own step, Keras 3 / tf_keras"],
          [[m, common.stat(b["prune_s"]), common.stat(b["train_step_s"]),
            common.fmt(b["ratio_to_step"])]
           for m, b in r["by_method"].items()]),
      "",
      *common.table(
          ["path", "model", "batch", "method", "rounds", "train step s",
           "prune s", "first call s", "ratio to step"],
          [[x["path"], x["model"], str(x["batch_size"]), x["method"],
            str(x["rounds"]), common.stat(x["train_step_s"]),
            common.stat(x["prune_steady_s"]), common.fmt(x["prune_first_s"]),
            common.stat(x["ratio_to_step"])] for x in sec["saliency_rows"]]),
      "",
      *common.table(
          ["path", "variant", "model", "batch", "images/s", "ratio to dense"],
          [[x["path"], x["variant"], x["model"], str(x["batch_size"]),
            common.stat(x["images_per_s"]), common.stat(x["ratio_to_dense"])]
           for x in sec["fit_rows"]])]


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  """Keras 3 masked fit >= training.MIN_RATIO_TO_DENSE of its dense fit;
  Keras 3's prune time <= MAX_KERAS3_TO_TF_KERAS of tf_keras's, per method."""
  out = []
  for row in sec.get("fit_rows", []):
    if row["path"] == "keras3" and row["variant"] == "masked":
      r = row["ratio_to_dense"]
      out.append(bench.target(
          "masked training throughput, keras3", "images/s / dense images/s",
          r["median"], ">=", training.MIN_RATIO_TO_DENSE,
          [r["min"], r["max"]]))
  between = sec.get("keras3_to_tf_keras", {}).get("by_method", {})
  for method, b in between.items():
    r = b["prune_s"]
    out.append(bench.target(
        f"{method} prune, Keras 3 beside tf_keras", "Keras 3 prune s / "
        "tf_keras prune s (same model, weights, batch)", r["median"], "<=",
        MAX_KERAS3_TO_TF_KERAS, [r["min"], r["max"]]))
  return out


bench.register(bench.Section(
    "keras3", run, markdown, targets=targets, presets=presets, order=60,
    # Before saliency (the longest), after the other sections.
    run_order=900))
