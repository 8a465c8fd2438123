"""Median interpreter latency of one example (batch 1)."""

import time

import numpy as np

from sbp_tf.export import running


LATENCY_RUNS = 20


def time_interpreter(content: bytes, runs: int = LATENCY_RUNS, *, x=None,
                     seed=0) -> dict:
  """Median wall time of one interpreter invoke on one example (batch 1).

  One warm-up invoke, then ``runs`` timed ones (set/invoke/get, including
  int8 input quantization for integer interfaces).

  Usage::

      t = time_interpreter(conversion.convert(model), runs=50, x=x_test[:1])
      print(t["latency_ms"], t["resolver"])

  Args:
    content: ``.tflite`` bytes.
    runs: number of timed invokes (>= 1).
    x: inputs, the first example is used: an array (one input), a dict by
      input name, or a list/tuple in the file's input order; default one
      random normal example per float input and token id 0 for integer
      inputs, drawn with ``seed``.

  Returns:
    dict with ``latency_ms`` (median), ``latency_min_ms``, ``runs``,
    ``resolver``.
  """
  if int(runs) < 1:
    raise ValueError(f"runs={runs} times nothing. Fix: pass runs >= 1.")
  interp, resolver, _ = running.interpreter(content)
  runner = running.Runner(interp)
  if x is None:
    rng = np.random.default_rng(seed)
    feeds = {}
    for n in runner.inputs:
      d = runner.in_details[n]
      shape = [1] + list(d["shape"][1:])
      # Integer inputs are token ids (id 0 is always valid) unless the file
      # quantizes them.
      feeds[n] = (np.zeros(shape) if not np.issubdtype(d["dtype"], np.floating)
                  and not d["quantization"][0] else rng.standard_normal(shape))
  elif isinstance(x, dict):
    feeds = dict(x)
  elif isinstance(x, (list, tuple)):
    feeds = dict(zip(runner.inputs, x))
  else:
    feeds = {runner.inputs[0]: x}
  one = {n: np.asarray(feeds[n])[:1] for n in runner.inputs}
  one = {n: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating)
             else v) for n, v in one.items()}
  runner.invoke(one)  # warm-up: first invoke pays for lazy allocations
  times = []
  for _ in range(int(runs)):
    t0 = time.perf_counter()
    runner.invoke(one)
    times.append(time.perf_counter() - t0)
  return {"latency_ms": 1000.0 * float(np.median(times)),
          "latency_min_ms": 1000.0 * float(np.min(times)),
          "runs": int(runs), "resolver": resolver}
