"""Train one experiment: prune at init, train with masks, evaluate.

Usage::

    python -m sbp_tf.train --config=configs/cpu_fashion_mnist.py \
        --workdir=/tmp/fmnist --config.train.epochs=2 --config.prune.sparsity=0.95
    sbp-train --config=configs/cifar10_resnet32_stable_sbpsr.py --workdir=gs://... \
        --strategy=tpu --tpu=my-tpu

Rerunning the same command on an interrupted workdir resumes from the last
completed epoch; on a finished workdir it prints the stored metrics (pass
--overwrite to train again). See docs/training.md.
"""

from sbp_tf import _env  # noqa: F401  (Keras 2 before TensorFlow)

import json

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/<name>.py); override "
    "fields with --config.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of the run.")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "tpu"],
    "Distribution strategy (auto: TPU > several GPUs > one device).")
_TPU = flags.DEFINE_string("tpu", None, "TPU name or grpc:// address.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Discard an existing run in --workdir.")
_VERBOSE = flags.DEFINE_integer(
    "verbose", None, "Keras progress: 1 = bars, 2 = one line per epoch, "
    "0 = silent (default: config.train.verbose).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # pylint: disable=g-import-not-at-top
  from sbp_tf import config as sbp_config
  from sbp_tf import experiment
  from sbp_tf import strategy as sbp_strategy
  cfg = _CONFIG.value
  if _VERBOSE.value is not None:
    cfg.train.verbose = _VERBOSE.value
  cfg = sbp_config.resolve(cfg)  # fails on bad fields before any work
  strategy = sbp_strategy.get(_STRATEGY.value, tpu=_TPU.value)
  metrics = experiment.run(cfg, _WORKDIR.value, strategy=strategy,
                           overwrite=_OVERWRITE.value)
  print(json.dumps(metrics, indent=1, sort_keys=True, default=str))


def run_main():
  """Console-script entry point (``sbp-train``)."""
  app.run(main)


if __name__ == "__main__":
  run_main()
