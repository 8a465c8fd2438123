r"""Benchmark of pruning, masked training, input pipeline and TFLite export.

Every figure is measured in one run next to its reference and reported as a
ratio to it (this machine is shared and noisy): saliency cost as a multiple of
one dense training step on the same batch, masked ``model.fit`` throughput as a
fraction of the dense model's, the ``sbp_tf.data`` CIFAR-10 pipeline rate as a
multiple of the training rate, TFLite file size and latency relative to the
dense float model, and the peak host memory of pruning ResNet-50 (ImageNet
size). Timings are repeated; the JSON keeps median, quartiles, min and max.

Usage::

    python tools/benchmark.py                     # full run -> docs/results/
    python tools/benchmark.py --quick --out_dir=/tmp/bench   # ~1 minute
    python tools/benchmark.py --sections=saliency,tflite --repeats=3

Writes ``<out_dir>/benchmark.json`` and ``<out_dir>/benchmark.md``.
"""

import pathlib
import sys

# Run as a script (python tools/benchmark.py) the repo root is not on sys.path.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from sbp_tf import _env  # noqa: F401,E402  (Keras 2 before TensorFlow)

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import resource
import subprocess
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence

from absl import app
from absl import flags
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_VERSION = 1
SECTIONS = ("saliency", "training", "pipeline", "tflite", "memory")
METHODS = ("sbp", "grasp", "synflow", "magnitude", "random")
DATA_FREE = ("synflow", "magnitude", "random")

def define_flags():
  """Registers the command-line flags (only when run as a program, so that
  importing this module next to other absl binaries cannot clash)."""
  flags.DEFINE_bool(
      "quick", False, "Small models, few repeats: about a minute. Figures are "
      "for checking the harness, not for reporting.")
  flags.DEFINE_string(
      "out_dir", None, "Where benchmark.json and benchmark.md go (default: "
      "docs/results for a full run, a temporary folder with --quick).")
  flags.DEFINE_list("sections", list(SECTIONS),
                    f"Sections to run, of {list(SECTIONS)}.")
  flags.DEFINE_list("methods", list(METHODS),
                    "Pruning methods timed in the saliency section.")
  flags.DEFINE_integer(
      "repeats", None, "Timed repeats per figure (default 5, or 2 with "
      "--quick).")
  flags.DEFINE_integer(
      "synflow_rounds", None, "SynFlow rounds (default 100, or 3 with "
      "--quick).")
  flags.DEFINE_string(
      "data_dir", None, "Folder with the CIFAR-10 archive (default: "
      "sbp_tf.data's search, e.g. ../shared/data).")
  flags.DEFINE_integer("seed", 0, "Seed of model init and pruning.")
  flags.DEFINE_string(
      "analysis_file", None, "Markdown file whose text is stored as the "
      "results' 'analysis' (profiles, explanations) and rendered last.")
  flags.DEFINE_bool(
      "render_only", False, "Re-render <out_dir>/benchmark.md from "
      "<out_dir>/benchmark.json (with --analysis_file) without measuring.")
  flags.DEFINE_bool(
      "merge", False, "Keep the sections already in <out_dir>/benchmark.json "
      "and replace only those measured now (e.g. re-time --sections=saliency "
      "after a fix); the markdown lists which command measured which section.")
  flags.DEFINE_string(
      "memory_child", None, "Internal: JSON settings of the memory-measuring "
      "child process.")


# --------------------------------------------------------------------------
# Timing and statistics utilities.


def summarize(samples: Sequence[float], unit: str = "s") -> Dict[str, Any]:
  """Median, quartiles and range of repeated measurements.

  ``median`` is the 50th percentile (linear interpolation, NumPy's default);
  ``q1``/``q3`` the 25th/75th; ``min``/``max`` the range.

  Example::

      summarize([1.0, 2.0, 4.0])["median"]  # 2.0
  """
  a = np.asarray(list(samples), dtype=np.float64)
  if a.size == 0:
    raise ValueError("summarize() needs at least one sample; run the timed "
                     "function at least once (repeats >= 1).")
  q1, med, q3 = np.percentile(a, [25, 50, 75])
  return {"median": float(med), "q1": float(q1), "q3": float(q3),
          "min": float(a.min()), "max": float(a.max()), "n": int(a.size),
          "unit": unit, "samples": [float(v) for v in a]}


def time_call(fn: Callable[[], Any]) -> float:
  """Wall-clock seconds of one call of ``fn`` (``time.perf_counter``)."""
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def time_repeats(fn: Callable[[], Any], repeats: int,
                 setup: Optional[Callable[[], Any]] = None):
  """First-call time and steady-state statistics of ``fn``.

  Calls ``setup()`` (untimed) then ``fn()`` (timed) ``repeats + 1`` times.
  The first call includes one-off costs (tf.function tracing, graph
  optimization); ``tracing_s = first - median(steady)``.

  Returns:
    ``(first_s, summarize(steady samples))``.
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}; pass --repeats=1 "
                     "or more.")
  times = []
  for _ in range(repeats + 1):
    if setup is not None:
      setup()
    times.append(time_call(fn))
  return times[0], summarize(times[1:])


def ratio_stats(num: Sequence[float], den: Sequence[float]) -> Dict[str, Any]:
  """Per-round ratios ``num[i] / den[i]`` of paired, interleaved measurements.

  Pairing rounds (A then B, repeated) cancels slow drifts of the machine's
  load that a ratio of two separate medians would absorb.
  """
  if len(num) != len(den):
    raise ValueError(f"ratio_stats needs paired samples, got {len(num)} and "
                     f"{len(den)}; measure both in the same rounds.")
  return summarize([n / d for n, d in zip(num, den)], unit="ratio")


def machine_info() -> Dict[str, Any]:
  """Cores, CPU model, memory, library versions and current load."""
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  cpu_model = platform.processor() or "unknown"
  with contextlib.suppress(OSError):
    for line in open("/proc/cpuinfo", encoding="utf-8"):
      if line.startswith("model name"):
        cpu_model = line.split(":", 1)[1].strip()
        break
  mem_gib = None
  with contextlib.suppress(OSError, ValueError, IndexError):
    for line in open("/proc/meminfo", encoding="utf-8"):
      if line.startswith("MemTotal"):
        mem_gib = round(int(line.split()[1]) / 2**20, 1)
  versions = {"python": platform.python_version(), "tensorflow": tf.__version__,
              "numpy": np.__version__}
  for mod in ("tf_keras", "tensorflow_model_optimization"):
    with contextlib.suppress(Exception):
      versions[mod] = __import__(mod).__version__
  try:
    usable = len(os.sched_getaffinity(0))
  except AttributeError:
    usable = os.cpu_count()
  return {
      "cpu_model": cpu_model,
      "logical_cores": os.cpu_count(),
      "usable_cores": usable,
      "memory_gib": mem_gib,
      "platform": platform.platform(),
      "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
      "versions": versions,
      "loadavg_start": list(os.getloadavg()),
  }


def other_load(other_cores: Optional[float], loadavgs: Sequence[Sequence[float]],
               cores: int) -> bool:
  """Whether other processes competed for the CPU during the run.

  Primary evidence: other processes used on average more than 0.25 of a core
  (``other_cpu_cores``). Without /proc/stat: a 1-minute load average above
  ``1.5 * cores`` (the benchmark alone keeps about ``cores`` threads busy).
  """
  if other_cores is not None:
    return other_cores > 0.25
  peak = max((la[0] for la in loadavgs), default=0.0)
  return peak > 1.5 * max(cores, 1)


def cpu_snapshot() -> tuple:
  """(machine busy CPU s, this process + children CPU s, wall s) right now.

  Machine busy time is user+nice+system+irq+softirq+steal of /proc/stat
  (clock ticks); the difference of two snapshots minus this process's own
  CPU time is what *other* processes used in between.
  """
  busy = float("nan")
  with contextlib.suppress(OSError, ValueError, IndexError):
    with open("/proc/stat", encoding="ascii") as f:
      v = [int(t) for t in f.readline().split()[1:]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
  own = sum(getattr(resource.getrusage(who), a)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for a in ("ru_utime", "ru_stime"))
  return busy, own, time.perf_counter()


def other_cpu_cores(start: tuple, end: tuple) -> Optional[float]:
  """Average number of cores used by other processes between two snapshots.

  ``(busy_end - busy_start - (own_end - own_start)) / wall``; None where
  /proc/stat is unreadable.
  """
  wall = end[2] - start[2]
  if not wall > 0 or np.isnan(start[0]) or np.isnan(end[0]):
    return None
  return max(0.0, (end[0] - start[0] - (end[1] - start[1])) / wall)


class SkipSection(Exception):
  """A section cannot run here (module missing, data absent, quick mode)."""


def _need(module: str, attr: Optional[str] = None):
  """Imports ``module`` (and returns ``module.attr``) or skips the section."""
  import importlib  # pylint: disable=g-import-not-at-top
  try:
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod
  except (ImportError, AttributeError) as e:
    raise SkipSection(f"{module}{'.' + attr if attr else ''} is not "
                      f"available ({type(e).__name__}: {e})") from e


# --------------------------------------------------------------------------
# Settings.


@dataclasses.dataclass
class Settings:
  """What each section measures; ``quick()``/``full()`` give the presets."""
  quick: bool
  repeats: int
  seed: int
  data_dir: Optional[str]
  methods: Sequence[str]
  synflow_rounds: int
  # (model, batch, input shape, classes, build options, repeats, synflow
  # rounds or None for ``synflow_rounds``)
  saliency_models: List[tuple]
  saliency_skipped: List[str]
  train_model: tuple
  train_batch: int
  train_steps: int
  train_rounds: int
  pipeline_batch: int
  pipeline_batches: int
  tflite_model: tuple
  tflite_sparsities: Sequence[float]
  tflite_invokes: int
  memory_model: tuple
  memory_batch: int

  @classmethod
  def full(cls, repeats=5, seed=0, data_dir=None, methods=METHODS,
           synflow_rounds=100):
    return cls(
        quick=False, repeats=repeats, seed=seed, data_dir=data_dir,
        methods=list(methods), synflow_rounds=synflow_rounds,
        # Fewer repeats and SynFlow rounds on the big models: one SynFlow
        # round costs several seconds there (see docs/benchmark.md); its
        # cost is linear in the rounds.
        saliency_models=[
            ("resnet32", 128, (32, 32, 3), 10, {}, repeats, None),
            ("resnet50", 128, (32, 32, 3), 10, {}, max(1, repeats - 1), 20),
            ("resnet50_imagenet", 16, (224, 224, 3), 1000, {}, repeats, 3),
        ],
        saliency_skipped=[],
        train_model=("resnet32", (32, 32, 3), 10, {}),
        train_batch=128, train_steps=8, train_rounds=repeats,
        pipeline_batch=128, pipeline_batches=60,
        tflite_model=("resnet32", (32, 32, 3), 10, {}),
        tflite_sparsities=(0.0, 0.9, 0.95, 0.98), tflite_invokes=20,
        memory_model=("resnet50_imagenet", (224, 224, 3), 1000, {}),
        memory_batch=32)

  @classmethod
  def quick_preset(cls, repeats=2, seed=0, data_dir=None, methods=METHODS,
                   synflow_rounds=3):
    # Width 0.5 keeps the quick models small but not all call overhead.
    small = {"width_multiplier": 0.5}
    return cls(
        quick=True, repeats=repeats, seed=seed, data_dir=data_dir,
        methods=list(methods), synflow_rounds=synflow_rounds,
        # A ResNet-8 (one block per stage): same code paths as ResNet-32
        # with a quarter of the tracing time.
        saliency_models=[("resnet_cifar", 16, (32, 32, 3), 10,
                          dict(small, depth=8), repeats, None)],
        saliency_skipped=[
            "--quick times a ResNet-8 at width 0.5; resnet32, resnet50 and "
            "resnet50_imagenet are run without --quick"],
        # Tracing three wrapped ResNets alone takes ~30 s on a loaded 2-core
        # machine; a 4-layer CNN exercises the same code paths.
        train_model=("vcnn", (32, 32, 3), 10, {"depth": 4, "width": 32}),
        train_batch=32, train_steps=4, train_rounds=repeats,
        pipeline_batch=128, pipeline_batches=4,
        # A 115-layer ResNet takes ~10 s per TFLite conversion here.
        tflite_model=("vcnn", (32, 32, 3), 10, {"depth": 4, "width": 64}),
        tflite_sparsities=(0.0, 0.95), tflite_invokes=5,
        memory_model=("vcnn", (32, 32, 3), 10, {"depth": 4, "width": 32}),
        memory_batch=8)


# --------------------------------------------------------------------------
# Shared helpers of the sections.


def _build(name, input_shape, num_classes, options, seed):
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  build = _need("sbp_tf.models", "build")
  tf.keras.utils.set_random_seed(seed)
  return build(name, num_classes, tuple(input_shape), **options)


def _loss():
  from sbp_tf.compat import keras  # pylint: disable=g-import-not-at-top
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _compile(model):
  from sbp_tf.compat import keras  # pylint: disable=g-import-not-at-top
  model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=_loss())


def _batch(settings, batch, input_shape, num_classes):
  """One (x, y) batch: real CIFAR-10 when the shape fits, else Gaussian."""
  if tuple(input_shape) == (32, 32, 3) and num_classes == 10:
    with contextlib.suppress(Exception):
      load = _need("sbp_tf.data", "load")
      ds, _ = load("cifar10", "train", batch_size=batch, limit=batch,
                   data_dir=settings.data_dir, shuffle=False, augment=False)
      x, y = next(iter(ds))
      return x.numpy(), y.numpy().astype(np.int32), "cifar10"
  rng = np.random.default_rng(settings.seed)
  x = rng.standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
  y = rng.integers(0, num_classes, size=(batch,)).astype(np.int32)
  return x, y, "gaussian"


def _median(stat):
  return stat["median"]


# --------------------------------------------------------------------------
# Section: saliency cost per method.


def _prune_kwargs(method, settings, x, y, syn_rounds):
  kw = {"seed": settings.seed}
  if method not in DATA_FREE:
    kw.update(data=(x, y), loss=_loss())
  if method == "synflow":
    kw["rounds"] = syn_rounds
  return kw


def section_saliency(settings: Settings,
                     progress: Optional[Callable[[Dict], Any]] = None
                     ) -> Dict[str, Any]:
  """Time of ``prune()`` per method as a multiple of one dense train step.

  Per model: the dense step (``model.train_on_batch`` after a warm-up call)
  and every method's ``prune(model, method, 0.9, ...)`` on the same model and
  batch are timed in interleaved rounds; the initial weights are restored
  (untimed) before every call, so each prune sees a fresh initialization.
  The first prune call on the model is reported separately (tracing).
  """
  prune = _need("sbp_tf.pruning", "prune")
  rows, notes = [], list(settings.saliency_skipped)
  notes.append("Timed: the public prune(model, method, 0.9) call (scores, "
               "global threshold, masks applied) on the same model, weights "
               "restored before each call; steady = calls after the first.")
  for (name, batch, shape, ncls, options, repeats,
       syn_rounds) in settings.saliency_models:
    syn_rounds = syn_rounds or settings.synflow_rounds
    model = _build(name, shape, ncls, options, settings.seed)
    _compile(model)
    x, y, source = _batch(settings, batch, shape, ncls)
    w0 = model.get_weights()
    restore = lambda m=model, w=w0: m.set_weights(w)
    step_first = time_call(lambda: model.train_on_batch(x, y))
    for _ in range(2):  # warm-up: steady-state compiled step
      model.train_on_batch(x, y)
    firsts = {}
    for method in settings.methods:
      restore()
      kw = _prune_kwargs(method, settings, x, y, syn_rounds)
      firsts[method] = time_call(lambda m=method, k=kw: prune(model, m, 0.9,
                                                              **k))
    steps, times = [], {m: [] for m in settings.methods}
    for _ in range(repeats):
      restore()
      steps.append(float(np.median(
          [time_call(lambda: model.train_on_batch(x, y)) for _ in range(2)])))
      for method in settings.methods:
        restore()
        kw = _prune_kwargs(method, settings, x, y, syn_rounds)
        times[method].append(
            time_call(lambda m=method, k=kw: prune(model, m, 0.9, **k)))
    step = summarize(steps)
    for method in settings.methods:
      steady = summarize(times[method])
      rows.append({
          "model": name, "options": options, "method": method,
          "batch_size": batch, "input_shape": list(shape), "data": source,
          "rounds": syn_rounds if method == "synflow" else 1,
          "train_step_s": step,
          "train_step_first_s": step_first,
          "prune_first_s": firsts[method],
          "prune_steady_s": steady,
          "tracing_s": max(0.0, firsts[method] - steady["median"]),
          "ratio_to_step": ratio_stats(times[method], steps),
          "first_call_ratio_to_step": firsts[method] / step["median"],
      })
    del model
    if progress is not None:  # one model done: keep its rows if interrupted
      progress({"rows": list(rows), "notes": notes, "status": "ok",
                "partial": True})
  return {"rows": rows, "notes": notes}


# --------------------------------------------------------------------------
# Section: masked training throughput.


def _timing_callback():
  """A callback timing batches 1..N-1 of one epoch (batch 0 is excluded)."""
  from sbp_tf.compat import keras  # pylint: disable=g-import-not-at-top

  class _Timer(keras.callbacks.Callback):
    """Records perf_counter at each batch end (after every other callback)."""

    def on_epoch_begin(self, epoch, logs=None):
      self.ends = []

    def on_train_batch_end(self, batch, logs=None):
      self.ends.append(time.perf_counter())

    def images_per_s(self, batch_size):
      if len(self.ends) < 2:
        raise ValueError("need >= 2 timed steps; raise train_steps.")
      return (len(self.ends) - 1) * batch_size / (self.ends[-1] - self.ends[0])

  return _Timer()


def _cached_train_data(settings, batch, steps, shape, ncls):
  """The first ``steps`` batches of sbp_tf.data CIFAR-10, cached, repeated."""
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  try:
    load = _need("sbp_tf.data", "load")
    ds, _ = load("cifar10", "train", batch_size=batch, limit=batch * steps,
                 data_dir=settings.data_dir, seed=settings.seed,
                 drop_remainder=True)
    source = "sbp_tf.data cifar10 train (first batches, cached in memory)"
  except Exception as e:  # pylint: disable=broad-except
    x, y, _ = _batch(settings, batch * steps, shape, ncls)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch,
                                                          drop_remainder=True)
    source = f"Gaussian tensors (sbp_tf.data unavailable: {e})"
  return ds.take(steps).cache().repeat().prefetch(2), source


def _fit_rate(model, ds, steps, batch, callbacks, walls=None):
  """Steady images/s of one ``fit`` epoch; appends the call's wall time."""
  timer = _timing_callback()
  t0 = time.perf_counter()
  model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0,
            callbacks=list(callbacks) + [timer])
  if walls is not None:
    walls.append(time.perf_counter() - t0)
  return timer.images_per_s(batch)


def _variants(settings):
  """(label, model, callbacks) for dense, tfmot-wrapped and plain masking."""
  prune = _need("sbp_tf.pruning", "prune")
  name, shape, ncls, options = settings.train_model
  out, notes = [], []
  dense = _build(name, shape, ncls, options, settings.seed)
  out.append(("dense", dense, []))
  base = _build(name, shape, ncls, options, settings.seed)
  masks = prune(base, "magnitude", 0.9, seed=settings.seed).masks
  try:
    tfmot = _need("sbp_tf.tfmot")
    wrapped = tfmot.wrap(_build(name, shape, ncls, options, settings.seed),
                         masks)
    out.append(("tfmot", wrapped, list(tfmot.callbacks())))
  except SkipSection as e:
    notes.append(f"tfmot variant skipped: {e}")
  try:
    masking = _need("sbp_tf.masking")
    masked = masking.wrap(_build(name, shape, ncls, options, settings.seed),
                          masks)
    cbs = list(masking.callbacks()) if hasattr(masking, "callbacks") else []
    out.append(("masking", masked, cbs))
  except SkipSection as e:
    notes.append(f"plain-Keras masking variant skipped: {e}")
  return out, notes


def section_training(settings: Settings) -> Dict[str, Any]:
  """``model.fit`` images/s of masked models relative to the dense model.

  Same architecture, initialization, batch and in-memory data for all; masks
  at 90% sparsity (magnitude; the cost does not depend on which weights).
  Rounds interleave the variants (dense, tfmot, masking, dense, ...); each
  rate excludes the epoch's first step and includes every callback.
  """
  name, shape, ncls, options = settings.train_model
  b, steps = settings.train_batch, settings.train_steps
  ds, source = _cached_train_data(settings, b, steps, shape, ncls)
  variants, notes = _variants(settings)
  first = {}
  for label, model, cbs in variants:
    _compile(model)
    walls = []
    _fit_rate(model, ds, steps, b, cbs, walls)  # warm-up: tracing, data cache
    first[label] = walls[0]
  rates = {label: [] for label, _, _ in variants}
  walls = {label: [] for label, _, _ in variants}
  for _ in range(settings.train_rounds):
    for label, model, cbs in variants:
      rates[label].append(_fit_rate(model, ds, steps, b, cbs, walls[label]))
  rows = []
  for label, _, _ in variants:
    rows.append({"variant": label, "model": name, "options": options,
                 "batch_size": b, "steps_per_round": steps,
                 "images_per_s": summarize(rates[label], "images/s"),
                 "ratio_to_dense": ratio_stats(rates[label], rates["dense"]),
                 "fit_call_s": summarize(walls[label]),
                 "first_fit_call_s": first[label]})
  notes.append(f"data: {source}")
  return {"rows": rows, "notes": notes,
          "dense_images_per_s": _median(summarize(rates["dense"]))}


# --------------------------------------------------------------------------
# Section: input pipeline.


def section_pipeline(settings: Settings, train_rate: Optional[float]):
  """sbp_tf.data CIFAR-10 train pipeline images/s vs training images/s.

  ``first_s``: ``load()`` plus the first batch (archive extraction when the
  cache is cold). Steady: ``pipeline_batches`` batches per repeat, iterating
  the dataset alone, then the same pipeline feeding ``model.fit`` live
  compared with the cached in-memory copy (the pipeline is a bottleneck when
  live training is slower than cached).
  """
  load = _need("sbp_tf.data", "load")
  b, n = settings.pipeline_batch, settings.pipeline_batches
  t0 = time.perf_counter()
  try:
    ds, info = load("cifar10", "train", batch_size=b,
                    data_dir=settings.data_dir, seed=settings.seed)
    it = iter(ds)
    next(it)
  except Exception as e:  # pylint: disable=broad-except
    raise SkipSection(f"CIFAR-10 could not be loaded: {e}") from e
  first = time.perf_counter() - t0
  cold = None
  if not settings.quick:
    # One-off cost of a cold cache: archive extraction and JPEG decoding.
    with tempfile.TemporaryDirectory() as tmp:
      t1 = time.perf_counter()
      cds, _ = load("cifar10", "train", batch_size=b, cache_dir=tmp,
                    data_dir=settings.data_dir, seed=settings.seed)
      next(iter(cds))
      cold = time.perf_counter() - t1
      del cds
  rates = []
  for _ in range(settings.repeats):
    t = time_call(lambda: [next(it) for _ in range(n)])
    rates.append(n * b / t)
  stat = summarize(rates, "images/s")
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
  live, _ = load("cifar10", "train", batch_size=tb,
                 data_dir=settings.data_dir, seed=settings.seed,
                 drop_remainder=True)
  live = live.repeat()
  cached, _ = _cached_train_data(settings, tb, steps, shape, ncls)
  model = _build(name, shape, ncls, options, settings.seed)
  _compile(model)
  _fit_rate(model, cached, steps, tb, [])
  _fit_rate(model, live, steps, tb, [])
  r_live, r_cached = [], []
  for _ in range(min(2, settings.train_rounds)):
    r_cached.append(_fit_rate(model, cached, steps, tb, []))
    r_live.append(_fit_rate(model, live, steps, tb, []))
  out["fit_live_images_per_s"] = summarize(r_live, "images/s")
  out["fit_cached_images_per_s"] = summarize(r_cached, "images/s")
  out["fit_live_ratio_to_cached"] = ratio_stats(r_live, r_cached)
  return out


# --------------------------------------------------------------------------
# Section: TFLite size and latency.


def _interpreter_latency(path, x, invokes, repeats):
  """Median ms per invoke of the TFLite interpreter (1 thread), with range.

  Falls back to the builtin op resolver when the default (XNNPACK) delegate
  refuses the graph.
  """
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  resolver = "default (XNNPACK)"
  try:
    interp = tf.lite.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
  except (RuntimeError, ValueError):
    resolver = "builtin (XNNPACK refused)"
    interp = tf.lite.Interpreter(
        model_path=str(path), num_threads=1,
        experimental_op_resolver_type=(
            tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interp.allocate_tensors()
  inp = interp.get_input_details()[0]
  interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
  interp.invoke()
  samples = []
  for _ in range(repeats):
    t = time_call(lambda: [interp.invoke() for _ in range(invokes)])
    samples.append(1e3 * t / invokes)
  return summarize(samples, "ms"), resolver


def section_tflite(settings: Settings) -> Dict[str, Any]:
  """File size and latency of the sparse TFLite export vs dense float.

  Reference: the unpruned model converted with ``sparse=False, quantize=None``.
  Rows: magnitude-pruned copies (same init) at each sparsity, exported with
  ``sparse=True``, float and dynamic-range quantized. Latency: one image per
  invoke, one interpreter thread.
  """
  to_tflite = _need("sbp_tf.export", "to_tflite")
  prune = _need("sbp_tf.pruning", "prune")
  name, shape, ncls, options = settings.tflite_model
  x, _, _ = _batch(settings, 1, shape, ncls)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    def export(s, quantize, sparse):
      model = _build(name, shape, ncls, options, settings.seed)
      if s > 0:
        prune(model, "magnitude", s, seed=settings.seed)
      path = pathlib.Path(tmp) / f"m_{s}_{quantize}_{sparse}.tflite"
      t0 = time.perf_counter()
      report = to_tflite(model, str(path), sparse=sparse, quantize=quantize)
      convert_s = time.perf_counter() - t0
      lat, resolver = _interpreter_latency(path, x, settings.tflite_invokes,
                                           settings.repeats)
      return {"sparsity": s, "quantize": quantize or "none", "sparse": sparse,
              "size_bytes": path.stat().st_size, "latency_ms": lat,
              "resolver": resolver, "convert_s": convert_s,
              "export_report": _jsonable(report)}
    ref = export(0.0, None, False)
    for s in settings.tflite_sparsities:
      for q in (None, "dynamic"):
        row = ref if (s == 0 and q is None) else export(s, q, True)
        row = dict(row)
        row["size_ratio"] = row["size_bytes"] / ref["size_bytes"]
        row["latency_ratio"] = (row["latency_ms"]["median"]
                                / ref["latency_ms"]["median"])
        rows.append(row)
  return {"model": name, "options": options, "reference_bytes":
          ref["size_bytes"], "rows": rows,
          "notes": ["Reference = dense float export (sparse=False); the 0% "
                    "float row is that reference."]}


def _jsonable(obj):
  """A JSON-serializable copy (numbers, strings, lists, dicts) of ``obj``."""
  if isinstance(obj, dict):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, (np.floating, np.integer)):
    return obj.item()
  if isinstance(obj, (str, int, float, bool)) or obj is None:
    return obj
  return repr(obj)


# --------------------------------------------------------------------------
# Section: peak host memory (child process).


def _rss_bytes():
  with open("/proc/self/statm", encoding="ascii") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(spec: Dict[str, Any]) -> Dict[str, Any]:
  """Runs in a fresh process: peak RSS of building, then pruning, a model.

  ``ru_maxrss`` (the kernel's high-water mark, KiB on Linux) before and after
  ``prune``; a 10 ms polling thread also records the peak of current RSS
  during ``prune`` only.
  """
  prune = _need("sbp_tf.pruning", "prune")
  settings = Settings.quick_preset(seed=spec["seed"],
                                   data_dir=spec.get("data_dir"))
  name, shape, ncls = spec["model"], tuple(spec["input_shape"]), spec["classes"]
  rss_import = _rss_bytes()
  model = _build(name, shape, ncls, spec["options"], spec["seed"])
  x, y, _ = _batch(settings, spec["batch"], shape, ncls)
  before_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  rss_before = _rss_bytes()
  peak = [rss_before]
  stop = threading.Event()

  def poll():
    while not stop.is_set():
      peak[0] = max(peak[0], _rss_bytes())
      time.sleep(0.01)

  th = threading.Thread(target=poll, daemon=True)
  th.start()
  t0 = time.perf_counter()
  prune(model, spec["method"], 0.9, data=(x, y), loss=_loss(),
        seed=spec["seed"])
  prune_s = time.perf_counter() - t0
  stop.set()
  th.join()
  after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  params = int(sum(np.prod(w.shape) for w in model.weights))
  return {"model": name, "options": spec["options"], "batch_size":
          spec["batch"], "input_shape": list(shape), "method": spec["method"],
          "parameters": params, "prune_s": prune_s,
          "rss_after_import_bytes": rss_import,
          "rss_before_prune_bytes": rss_before,
          "peak_rss_during_prune_bytes": peak[0],
          "ru_maxrss_before_prune_bytes": before_max,
          "ru_maxrss_after_prune_bytes": after_max,
          "prune_increment_bytes": max(0, peak[0] - rss_before),
          "input_batch_bytes": int(x.nbytes),
          "weights_bytes": params * 4}


def section_memory(settings: Settings) -> Dict[str, Any]:
  """Peak RSS of ``prune(model, 'sbp', 0.9)`` measured in a child process."""
  _need("sbp_tf.pruning", "prune")
  _need("sbp_tf.models", "build")
  name, shape, ncls, options = settings.memory_model
  spec = {"model": name, "input_shape": list(shape), "classes": ncls,
          "options": options, "batch": settings.memory_batch, "method": "sbp",
          "seed": settings.seed, "data_dir": settings.data_dir}
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  proc = subprocess.run(
      [sys.executable, str(pathlib.Path(__file__).resolve()),
       "--memory_child=" + json.dumps(spec)],
      capture_output=True, text=True, env=env, check=False, timeout=1800)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("MEMORY_JSON ")]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f"memory child failed (rc={proc.returncode}): "
                       f"{proc.stderr[-2000:]}")
  out = json.loads(lines[-1][len("MEMORY_JSON "):])
  out["notes"] = ["Fresh process: TF import, model build, one batch, then "
                  "prune(model, 'sbp', 0.9). Peak = highest sampled RSS "
                  "during prune (10 ms polling); ru_maxrss = kernel "
                  "high-water mark of the whole process."]
  return out


# --------------------------------------------------------------------------
# Targets, writer, main.


def targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
  """Each target of issue 8 with its measured (median) figure and verdict."""
  out = []

  def add(name, figure, value, op, limit, spread=None):
    met = None if value is None else (value <= limit if op == "<="
                                      else value >= limit)
    out.append({"name": name, "figure": figure, "value": value, "op": op,
                "limit": limit, "met": met, "spread": spread})

  sal = results["sections"].get("saliency", {})
  for row in sal.get("rows", []):
    lim = {"sbp": 1.5, "grasp": 3.0}.get(row["method"])
    if lim:
      r = row["ratio_to_step"]
      add(f"{row['method']} saliency, {row['model']} (batch "
          f"{row['batch_size']})", "prune time / dense train step",
          r["median"], "<=", lim, [r["min"], r["max"]])
  tr = results["sections"].get("training", {})
  for row in tr.get("rows", []):
    if row["variant"] != "dense":
      r = row["ratio_to_dense"]
      add(f"masked training throughput, {row['variant']}",
          "images/s / dense images/s", r["median"], ">=", 0.95,
          [r["min"], r["max"]])
  pl = results["sections"].get("pipeline", {})
  if "ratio_to_training" in pl:
    add("input pipeline not the bottleneck", "pipeline images/s / training "
        "images/s", pl["ratio_to_training"], ">=", 1.0)
  if "fit_live_ratio_to_cached" in pl:
    r = pl["fit_live_ratio_to_cached"]
    add("fit with live pipeline vs cached data", "live images/s / cached "
        "images/s", r["median"], ">=", 0.95, [r["min"], r["max"]])
  tl = results["sections"].get("tflite", {})
  for row in tl.get("rows", []):
    if abs(row["sparsity"] - 0.95) < 1e-9:
      add(f"TFLite size at 95% sparsity, {row['quantize']}",
          "file bytes / dense float file bytes", row["size_ratio"], "<=", 0.12)
  return out


def _fmt(v, digits=3):
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.{digits}g}"
  return str(v)


def _stat(s, digits=3):
  return (f"{_fmt(s['median'], digits)} [{_fmt(s['min'], digits)}, "
          f"{_fmt(s['max'], digits)}]")


def to_markdown(res: Dict[str, Any]) -> str:
  """The human summary: machine, targets, then one table per section."""
  m = res["machine"]
  cpus = {r.get("cpu_model") or m["cpu_model"] for r in res.get("runs") or []}
  if res.get("runs"):
    where = ("on the same machine" if len(cpus) == 1 else
             "on different machines (each run's CPU below; a ratio is only "
             "ever taken within one run)")
    head = (f"Mode: **{res['mode']}**. Sections measured by "
            f"{len(res['runs'])} runs of the same tool {where}:")
  else:
    head = (f"Mode: **{res['mode']}**. Generated {res['started_utc']} in "
            f"{res['wall_s']:.0f} s by `{res['command']}`.")
  if res.get("partial"):
    head += " **Partial: the run was still going or was interrupted.**"
  lines = ["# sbp_tf benchmark", "", head, ""]
  for r in res.get("runs") or []:
    cpu = f", {r['cpu_model']}" if len(cpus) > 1 and r.get("cpu_model") else ""
    lines.append(f"- `{r['command']}` ({r['started_utc']}, {r['wall_s']:.0f}"
                 f" s{cpu}{', machine shared' if r.get('shared') else ''}): "
                 + ", ".join(r["sections"]))
  if res.get("runs"):
    lines.append("")
  lines += [
      "Figures are medians over repeats, with [min, max] in brackets; every "
      "ratio is taken against its reference measured in the same run "
      "(paired, interleaved rounds where marked).", "",
      "## Machine", "",
      *(["Of the newest run; the CPU of each run is listed above.", ""]
        if len(cpus) > 1 else []),
      f"- CPU: {m['cpu_model']}, {m['usable_cores']} usable cores "
      f"({m['logical_cores']} logical), {m['memory_gib']} GiB RAM; GPUs: "
      f"{', '.join(m['gpus']) or 'none'}",
      "- Versions: " + ", ".join(f"{k} {v}" for k, v in
                                  m["versions"].items()),
      f"- Load average (1 min) at start {m['loadavg_start'][0]:.2f}, "
      f"peak seen {m['loadavg_peak']:.2f}, at end {m['loadavg_end'][0]:.2f}; "
      f"other processes used {_fmt(m['other_cpu_cores'], 2)} cores on "
      "average during the run (from /proc/stat minus this process).",
  ]
  if m.get("shared"):
    lines.append("- **The machine was shared with other processes during "
                 "this run** (they used more than 0.25 of a core on average): "
                 "absolute times are pessimistic and noisy; the "
                 "paired ratios are the figures to read.")
  lines += ["", "## Targets", "",
            "| target | figure | measured | [min, max] | limit | met |",
            "|---|---|---|---|---|---|"]
  for t in res["targets"]:
    spread = (f"[{_fmt(t['spread'][0])}, {_fmt(t['spread'][1])}]"
              if t["spread"] else "-")
    verdict = {True: "met", False: "**missed**", None: "-"}[t["met"]]
    lines.append(f"| {t['name']} | {t['figure']} | {_fmt(t['value'])} | "
                 f"{spread} | {t['op']} {t['limit']} | {verdict} |")
  secs = res["sections"]
  for name in SECTIONS:
    if name not in secs:
      continue
    sec = secs[name]
    lines += ["", f"## {name.capitalize()}", ""]
    if sec.get("status") != "ok":
      lines.append(f"_{sec.get('status')}: {sec.get('reason', '')}_")
      continue
    lines += _section_md(name, sec)
    lines.append("")
    lines.append(f"- Section wall time {sec['wall_s']:.0f} s; other processes "
                 f"used {_fmt(sec.get('other_cpu_cores'), 2)} cores meanwhile.")
    for note in sec.get("notes", []):
      lines.append(f"- {note}")
  if res.get("analysis"):
    lines += ["", "## Analysis", "", res["analysis"]]
  return "\n".join(lines) + "\n"


def _section_md(name, sec):
  out = []
  if name == "saliency":
    out += ["Seconds per call (median [min, max]); ratio = prune / dense "
            "train step, paired per round.", "",
            "| model | batch | method | rounds | train step s | prune s | "
            "ratio to step | first call s | tracing s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in sec["rows"]:
      out.append(
          f"| {r['model']} | {r['batch_size']} | {r['method']} | "
          f"{r['rounds']} | {_stat(r['train_step_s'])} | "
          f"{_stat(r['prune_steady_s'])} | {_stat(r['ratio_to_step'])} | "
          f"{_fmt(r['prune_first_s'])} | {_fmt(r['tracing_s'])} |")
  elif name == "training":
    out += ["Steady images/s exclude each epoch's first step; a fit call's "
            "wall time includes it and fit's setup (first call: tracing).", "",
            "| variant | model | batch | images/s | ratio to dense | "
            "fit call s | first fit call s |",
            "|---|---|---|---|---|---|---|"]
    for r in sec["rows"]:
      out.append(f"| {r['variant']} | {r['model']} | {r['batch_size']} | "
                 f"{_stat(r['images_per_s'])} | "
                 f"{_stat(r['ratio_to_dense'])} | {_stat(r['fit_call_s'])} | "
                 f"{_fmt(r['first_fit_call_s'])} |")
  elif name == "pipeline":
    out += ["| figure | value |", "|---|---|",
            f"| load() + first batch, cache as found (s) | "
            f"{_fmt(sec['first_s'])} |",
            f"| load() + first batch, cold cache: extract + decode (s) | "
            f"{_fmt(sec.get('cold_cache_first_s'))} |",
            f"| pipeline alone, images/s | {_stat(sec['images_per_s'])} |",
            f"| dense training, images/s | "
            f"{_fmt(sec.get('training_images_per_s'))} |",
            f"| pipeline / training | {_fmt(sec.get('ratio_to_training'))} |",
            f"| fit with live pipeline, images/s | "
            f"{_stat(sec['fit_live_images_per_s'])} |",
            f"| fit with cached data, images/s | "
            f"{_stat(sec['fit_cached_images_per_s'])} |",
            f"| live / cached | {_stat(sec['fit_live_ratio_to_cached'])} |"]
  elif name == "tflite":
    out += [f"Model {sec['model']} {sec['options'] or ''}; dense float "
            f"reference {sec['reference_bytes']} bytes.", "",
            "| sparsity | quantize | sparse | bytes | size ratio | "
            "latency ms | latency ratio | resolver |",
            "|---|---|---|---|---|---|---|---|"]
    for r in sec["rows"]:
      out.append(f"| {r['sparsity']:.0%} | {r['quantize']} | {r['sparse']} | "
                 f"{r['size_bytes']} | {_fmt(r['size_ratio'])} | "
                 f"{_stat(r['latency_ms'])} | {_fmt(r['latency_ratio'])} | "
                 f"{r['resolver']} |")
  elif name == "memory":
    mib = lambda b: f"{b / 2**20:.0f} MiB"
    out += [f"{sec['model']} {sec['options'] or ''}, batch "
            f"{sec['batch_size']} x {sec['input_shape']}, "
            f"{sec['parameters']:,} weights; prune(sbp) took "
            f"{sec['prune_s']:.1f} s.", "",
            "| figure | value |", "|---|---|",
            f"| RSS after TF import | {mib(sec['rss_after_import_bytes'])} |",
            f"| RSS before prune (model + batch) | "
            f"{mib(sec['rss_before_prune_bytes'])} |",
            f"| peak RSS during prune | "
            f"{mib(sec['peak_rss_during_prune_bytes'])} |",
            f"| prune increment (peak - before) | "
            f"{mib(sec['prune_increment_bytes'])} |",
            f"| ru_maxrss (process high-water mark) | "
            f"{mib(sec['ru_maxrss_after_prune_bytes'])} |",
            f"| weights / input batch | {mib(sec['weights_bytes'])} / "
            f"{mib(sec['input_batch_bytes'])} |"]
  return out


def run(settings: Settings, sections: Sequence[str], command: str = "",
        on_section: Optional[Callable[[Dict[str, Any]], Any]] = None
        ) -> Dict[str, Any]:
  """Runs the requested sections; returns the results dict (JSON-ready).

  ``on_section(partial_results)`` is called after each section (the full
  benchmark takes tens of minutes; partial results survive an interruption).
  """
  bad = [s for s in sections if s not in SECTIONS]
  if bad:
    raise ValueError(f"Unknown section(s) {bad}; choose from {list(SECTIONS)}.")
  bad = [m for m in settings.methods if m not in METHODS]
  if bad:
    raise ValueError(f"Unknown method(s) {bad}; choose from {list(METHODS)}.")
  t_start = time.perf_counter()
  res = {"schema_version": SCHEMA_VERSION,
         "mode": "quick" if settings.quick else "full",
         "command": command,
         "started_utc": datetime.datetime.now(datetime.timezone.utc)
                        .strftime("%Y-%m-%d %H:%M UTC"),
         "machine": machine_info(),
         "settings": _jsonable(dataclasses.asdict(settings)),
         "sections": {}}
  loads = [os.getloadavg()]
  cpu_start = cpu_snapshot()
  train_rate = None
  # Saliency last: it takes longest, and partial results of the other
  # sections are then written first.
  for name in SECTIONS[1:] + SECTIONS[:1]:
    if name not in sections:
      continue
    t0 = time.perf_counter()
    snap = cpu_snapshot()
    try:
      if name == "saliency":
        def progress(partial, name=name, t0=t0):
          if on_section is not None:
            res["sections"][name] = _jsonable(dict(
                partial, wall_s=time.perf_counter() - t0))
            on_section(_finish(dict(res, partial=True), loads, cpu_start,
                               t_start))
        sec = section_saliency(settings, progress)
      elif name == "training":
        sec = section_training(settings)
        train_rate = sec["dense_images_per_s"]
      elif name == "pipeline":
        sec = section_pipeline(settings, train_rate)
      elif name == "tflite":
        sec = section_tflite(settings)
      else:
        sec = section_memory(settings)
      sec["status"] = "ok"
    except SkipSection as e:
      sec = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # pylint: disable=broad-except
      # One broken section must not lose the others' figures.
      sec = {"status": "error", "reason": f"{type(e).__name__}: {e}",
             "traceback": traceback.format_exc()[-4000:]}
    sec["wall_s"] = time.perf_counter() - t0
    sec["other_cpu_cores"] = other_cpu_cores(snap, cpu_snapshot())
    sec["loadavg"] = list(os.getloadavg())
    loads.append(os.getloadavg())
    res["sections"][name] = _jsonable(sec)
    print(f"[benchmark] {name}: {sec['status']} in {sec['wall_s']:.1f} s",
          flush=True)
    if on_section is not None:
      on_section(_finish(dict(res, partial=True), loads, cpu_start, t_start))
  return _finish(res, loads, cpu_start, t_start)


def _finish(res, loads, cpu_start, t_start):
  """Adds end-of-run machine load, targets and wall time to ``res``."""
  res = dict(res, machine=dict(res["machine"]))
  m = res["machine"]
  m["loadavg_end"] = list(os.getloadavg())
  m["loadavg_peak"] = max(la[0] for la in loads + [os.getloadavg()])
  m["other_cpu_cores"] = other_cpu_cores(cpu_start, cpu_snapshot())
  m["shared"] = other_load(m["other_cpu_cores"], loads, m["usable_cores"] or 1)
  res["targets"] = targets(res)
  res["wall_s"] = time.perf_counter() - t_start
  return res


def merge(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
  """``old`` with the sections of ``new`` replacing its own; targets redone.

  ``runs`` records, per run, its command, start time, machine load and the
  sections it measured, so every figure stays traceable to its run.
  """
  if old.get("mode") != new.get("mode"):
    raise ValueError(f"Cannot merge a {new.get('mode')} run into a "
                     f"{old.get('mode')} result. Fix: use the same mode, or "
                     "drop --merge to write a fresh result.")
  runs = [r for r in old.get("runs") or [{
      "command": old["command"], "started_utc": old["started_utc"],
      "wall_s": old["wall_s"], "shared": old["machine"].get("shared"),
      "other_cpu_cores": old["machine"].get("other_cpu_cores"),
      "sections": list(old["sections"])}]]
  for r in runs:  # also results merged before runs recorded their CPU
    r.setdefault("cpu_model", old["machine"].get("cpu_model"))
  for r in runs:  # a re-measured section now belongs to the new run
    r["sections"] = [x for x in r["sections"] if x not in new["sections"]]
  runs = [r for r in runs if r["sections"]]
  runs.append({"command": new["command"], "started_utc": new["started_utc"],
               "wall_s": new["wall_s"], "shared": new["machine"].get("shared"),
               "other_cpu_cores": new["machine"].get("other_cpu_cores"),
               "cpu_model": new["machine"].get("cpu_model"),
               "sections": list(new["sections"])})
  out = dict(old, sections=dict(old["sections"], **new["sections"]),
             runs=runs, partial=bool(new.get("partial")))
  out["machine"] = dict(new["machine"], shared=any(r["shared"] for r in runs))
  out["targets"] = targets(out)
  out["wall_s"] = sum(r["wall_s"] for r in runs)
  return out


def write(res: Dict[str, Any], out_dir) -> Dict[str, pathlib.Path]:
  """Writes ``benchmark.json`` and ``benchmark.md`` into ``out_dir``."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = {"json": out_dir / "benchmark.json", "md": out_dir / "benchmark.md"}
  paths["json"].write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
  paths["md"].write_text(to_markdown(res), encoding="utf-8")
  return paths


def settings_from_flags() -> Settings:
  f = flags.FLAGS
  kw = {"seed": f.seed, "data_dir": f.data_dir, "methods": f.methods}
  if f.repeats is not None:
    kw["repeats"] = f.repeats
  if f.synflow_rounds is not None:
    kw["synflow_rounds"] = f.synflow_rounds
  return Settings.quick_preset(**kw) if f.quick else Settings.full(**kw)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}; use --flags.")
  f = flags.FLAGS
  if f.memory_child:
    out = memory_child(json.loads(f.memory_child))
    print("MEMORY_JSON " + json.dumps(_jsonable(out)), flush=True)
    return
  analysis = (pathlib.Path(f.analysis_file).read_text(encoding="utf-8")
              if f.analysis_file else None)
  if f.render_only:
    out_dir = pathlib.Path(f.out_dir or REPO / "docs" / "results")
    res = json.loads((out_dir / "benchmark.json").read_text(encoding="utf-8"))
    if analysis is not None:
      res["analysis"] = analysis
    paths = write(res, out_dir)
    print(f"[benchmark] re-rendered {paths['md']}")
    return
  settings = settings_from_flags()
  out_dir = f.out_dir or (
      tempfile.mkdtemp(prefix="sbp_benchmark_") if settings.quick
      else str(REPO / "docs" / "results"))
  command = "python tools/benchmark.py " + " ".join(sys.argv[1:])
  old = None
  if f.merge:
    old_path = pathlib.Path(out_dir) / "benchmark.json"
    if not old_path.exists():
      raise app.UsageError(f"--merge: {old_path} does not exist. Fix: run "
                           "without --merge first.")
    old = json.loads(old_path.read_text(encoding="utf-8"))
  combine = (lambda r: merge(old, r)) if old is not None else (lambda r: r)
  res = run(settings, f.sections, command=command.strip(),
            on_section=lambda partial: write(combine(partial), out_dir))
  res = combine(res)
  if analysis is not None:
    res["analysis"] = analysis
  paths = write(res, out_dir)
  for t in res["targets"]:
    verdict = {True: "met", False: "MISSED", None: "-"}[t["met"]]
    print(f"[benchmark] {t['name']}: {_fmt(t['value'])} ({t['op']} "
          f"{t['limit']}) {verdict}")
  print(f"[benchmark] wrote {paths['json']} and {paths['md']}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
