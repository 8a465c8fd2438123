"""Timing, statistics and machine-load helpers of the benchmark (no section).

Every figure is a repeated measurement summarized by :func:`summarize`;
ratios pair interleaved rounds (:func:`ratio_stats`); the machine's other
load comes from ``/proc/stat`` (:func:`cpu_snapshot`, :func:`other_cpu_cores`).
"""

import contextlib
import os
import platform
import resource
import time
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from sbp_tf.compat import tf


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
  # Third-party versions, recorded where the package reports one.
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
