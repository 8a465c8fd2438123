"""Section ``pipeline``: the sbp_tf.data CIFAR-10 train pipeline's images/s
vs training's, and ``fit`` fed live vs from a cached copy."""

import tempfile
import time
from typing import Any, Dict, List

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf import data
from tools import bench
from tools.bench import common
from tools.bench import timing

# Targets (issue 8): the pipeline alone at least as fast as training, and fit
# fed live at least this fraction of fit on cached data.
MIN_RATIO_TO_TRAINING = 1.0
MIN_LIVE_RATIO_TO_CACHED = 0.95


def presets(quick: bool, repeats: int) -> Dict[str, Any]:
  return {"pipeline_batch": 128, "pipeline_batches": 4 if quick else 60}


def run(settings, ctx: bench.Context) -> Dict[str, Any]:
  """sbp_tf.data CIFAR-10 train pipeline images/s vs training images/s.

  ``first_s``: ``load()`` plus the first batch (archive extraction when the
  cache is cold). Steady: ``pipeline_batches`` batches per repeat, iterating
  the dataset alone, then the same pipeline feeding ``model.fit`` live
  compared with the cached in-memory copy (the pipeline is a bottleneck when
  live training is slower than cached). ``ratio_to_training`` = pipeline
  median / the training section's dense images/s (when it ran before).
  Uses the training section's model and batch settings.
  """
  train_rate = ctx.results.get("training", {}).get("dense_images_per_s")
  b, n = settings.pipeline_batch, settings.pipeline_batches
  t0 = time.perf_counter()
  try:
    ds, info = data.load("cifar10", "train", batch_size=b,
                         data_dir=settings.data_dir, seed=settings.seed)
    it = iter(ds)
    next(it)
  except Exception as e:  # pylint: disable=broad-except
    raise bench.SkipSection(f"CIFAR-10 could not be loaded: {e}") from e
  first = time.perf_counter() - t0
  cold = None
  if not settings.quick:
    # One-off cost of a cold cache: archive extraction and JPEG decoding.
    with tempfile.TemporaryDirectory() as tmp:
      t1 = time.perf_counter()
      cds, _ = data.load("cifar10", "train", batch_size=b, cache_dir=tmp,
                         data_dir=settings.data_dir, seed=settings.seed)
      next(iter(cds))
      cold = time.perf_counter() - t1
      del cds
  rates = []
  for _ in range(settings.repeats):
    t = timing.time_call(lambda: [next(it) for _ in range(n)])
    rates.append(n * b / t)
  stat = timing.summarize(rates, "images/s")
  out = {"dataset": "cifar10", "split": "train", "batch_size": b,
         "batches_per_repeat": n, "first_s": first, "cold_cache_first_s": cold,
         "images_per_s": stat,
         "examples_per_epoch": getattr(info, "size", None),
         "source": str(getattr(info, "source", "")),
         "notes": ["Pipeline as users get it: shuffle and augmentation at "
                   "their train-split defaults."]}
  if train_rate:
    out["training_images_per_s"] = train_rate
    out["ratio_to_training"] = stat["median"] / train_rate
  # Live: the same pipeline feeding fit, vs its cached copy (paired rounds).
  name, shape, ncls, options = settings.train_model
  tb, steps = settings.train_batch, settings.train_steps
  live, _ = data.load("cifar10", "train", batch_size=tb,
                      data_dir=settings.data_dir, seed=settings.seed,
                      drop_remainder=True)
  live = live.repeat()
  cached, _ = common.cached_train_data(settings, tb, steps, shape, ncls)
  model = common.build_model(name, shape, ncls, options, settings.seed)
  common.compile_model(model)
  common.fit_rate(model, cached, steps, tb, [])
  common.fit_rate(model, live, steps, tb, [])
  r_live, r_cached = [], []
  for _ in range(min(2, settings.train_rounds)):
    r_cached.append(common.fit_rate(model, cached, steps, tb, []))
    r_live.append(common.fit_rate(model, live, steps, tb, []))
  out["fit_live_images_per_s"] = timing.summarize(r_live, "images/s")
  out["fit_cached_images_per_s"] = timing.summarize(r_cached, "images/s")
  out["fit_live_ratio_to_cached"] = timing.ratio_stats(r_live, r_cached)
  return out


def markdown(sec: Dict[str, Any]) -> List[str]:
  """A figure/value table."""
  fmt, stat = common.fmt, common.stat
  return common.table(["figure", "value"], [
      ["load() + first batch, cache as found (s)", fmt(sec["first_s"])],
      ["load() + first batch, cold cache: extract + decode (s)",
       fmt(sec.get("cold_cache_first_s"))],
      ["pipeline alone, images/s", stat(sec["images_per_s"])],
      ["dense training, images/s", fmt(sec.get("training_images_per_s"))],
      ["pipeline / training", fmt(sec.get("ratio_to_training"))],
      ["fit with live pipeline, images/s", stat(sec["fit_live_images_per_s"])],
      ["fit with cached data, images/s", stat(sec["fit_cached_images_per_s"])],
      ["live / cached", stat(sec["fit_live_ratio_to_cached"])]])


def targets(sec: Dict[str, Any]) -> List[Dict[str, Any]]:
  """Pipeline / training >= MIN_RATIO_TO_TRAINING; live / cached fit
  >= MIN_LIVE_RATIO_TO_CACHED (each where measured)."""
  out = []
  if "ratio_to_training" in sec:
    out.append(bench.target(
        "input pipeline not the bottleneck", "pipeline images/s / training "
        "images/s", sec["ratio_to_training"], ">=", MIN_RATIO_TO_TRAINING))
  if "fit_live_ratio_to_cached" in sec:
    r = sec["fit_live_ratio_to_cached"]
    out.append(bench.target(
        "fit with live pipeline vs cached data", "live images/s / cached "
        "images/s", r["median"], ">=", MIN_LIVE_RATIO_TO_CACHED,
        [r["min"], r["max"]]))
  return out


# After training: its dense images/s is this section's reference.
bench.register(bench.Section("pipeline", run, markdown, targets=targets,
                             presets=presets, order=30))
