r"""Measures dense ResNet32 on the offline CIFAR-10 at candidate CPU scales.

Issue 26 asks for a CPU scale where the dense ResNet32 reaches at least 70%
CIFAR-10 test accuracy and one cell runs in about 3 minutes on 2 cores. This
tool trains the dense (sparsity 0) ResNet32 through ``experiment.run`` at
each candidate setting (width, training images, epochs, batch, lr), with the
test split validated after every epoch, and writes, as each candidate
finishes, its per-epoch test accuracy, the training images seen, the wall
time and fit time to ``--out`` (JSON). Runs are resumable (the workdirs).

The accuracy after N images does not depend on the machine; the times do:
the JSON records the machine (CPU model, cores, whether it was shared) next
to them.

Usage::

    python tools/probe_cpu_scale.py --workdir=/tmp/probe \
        --out=docs/results/cpu_scale_probe.json --candidates=w025_e4
"""

import json
import os
import pathlib
import platform
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# name -> (width multiplier, training images, epochs, batch, lr)
CANDIDATES = {
    "w025_e4": (0.25, 50000, 4, 128, 0.1),
    "w025_e6": (0.25, 50000, 6, 128, 0.1),
    "w025_e8": (0.25, 50000, 8, 128, 0.1),
    "w05_e2": (0.5, 50000, 2, 128, 0.1),
    "w05_e4": (0.5, 50000, 4, 128, 0.1),
}

FLAGS = flags.FLAGS


def _define_flags():
  # Defined only when run as a program: importing CANDIDATES (the tests)
  # must not add flags that other modules define too.
  flags.DEFINE_string("workdir", None, "parent folder of the runs' workdirs")
  flags.DEFINE_string("out", "docs/results/cpu_scale_probe.json",
                      "JSON written as each candidate finishes")
  flags.DEFINE_list("candidates", ["w025_e4"], f"of {sorted(CANDIDATES)}")
  flags.DEFINE_integer("limit_test", 2000, "test images validated per epoch")
  flags.DEFINE_integer("seed", 0, "seed of the run")
  flags.DEFINE_string("machine_note", "", "e.g. 'shared with other jobs'")


def _cpu_model() -> str:
  try:
    for line in open("/proc/cpuinfo", encoding="utf-8"):
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def run_candidate(name, workdir, limit_test, seed):
  """Trains the dense ResNet32 of candidate ``name``; returns its row."""
  from sbp_tf import experiment  # pylint: disable=import-outside-toplevel
  from sbp_tf import config as sbp_config  # pylint: disable=import-outside-toplevel
  from tools import reproduce_data  # pylint: disable=import-outside-toplevel
  width, n_train, epochs, batch, lr = CANDIDATES[name]
  cfg = sbp_config.experiment("cifar10", "resnet32", method="magnitude",
                              sparsity=0.0, width_multiplier=width)
  cfg.seed = seed
  cfg.dataset.data_dir = reproduce_data.mixed_cifar10()
  cfg.dataset.limit_train, cfg.dataset.limit_test = n_train, limit_test
  cfg.train.epochs, cfg.train.batch_size, cfg.train.lr = epochs, batch, lr
  cfg.train.validate_each_epoch, cfg.train.verbose = True, 2
  cfg.export_tflite = False
  t0 = time.time()
  run_dir = os.path.join(workdir, f"{name}_seed{seed}")
  metrics = experiment.run(cfg, run_dir)
  # The per-epoch rows the run wrote (docs/training.md: metrics.json).
  with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as f:
    rows = json.load(f)
  return dict(
      candidate=name, seed=seed, width_multiplier=width, train_images=n_train,
      epochs=epochs, batch_size=batch, lr=lr, test_images=limit_test,
      test_accuracy=metrics["test_accuracy"],
      per_epoch_test_accuracy=[r.get("val_accuracy") for r in rows],
      per_epoch_time_s=[r.get("epoch_time_s") for r in rows],
      fit_time_s=metrics.get("fit_time_s"), wall_time_s=time.time() - t0)


def main(argv):
  del argv
  unknown = [c for c in FLAGS.candidates if c not in CANDIDATES]
  if unknown or not FLAGS.workdir:
    raise app.UsageError(
        f"unknown candidate(s) {unknown} or no --workdir. Fix: pass "
        f"--workdir=DIR and --candidates from {sorted(CANDIDATES)}.")
  out = pathlib.Path(FLAGS.out)
  doc = json.loads(out.read_text()) if out.exists() else {"runs": []}
  doc["machine"] = dict(cpu=_cpu_model(), cores=os.cpu_count(),
                        note=FLAGS.machine_note)
  for name in FLAGS.candidates:
    row = run_candidate(name, FLAGS.workdir, FLAGS.limit_test, FLAGS.seed)
    doc["runs"] = [r for r in doc["runs"] if (r["candidate"], r.get("seed", 0))
                   != (name, FLAGS.seed)] + [row]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
