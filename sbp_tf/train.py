"""Train one experiment: prune at init, train with masks, evaluate.

Usage::

    sbp-train --config=cpu_fashion_mnist_ffnn --workdir=/tmp/ffnn
    python -m sbp_tf.train --config=configs/cpu_fashion_mnist.py
        --workdir=/tmp/fmnist --config.train.epochs=2
        --config.prune.sparsity=0.95
    python -m sbp_tf.train --config=configs/cpu_fashion_mnist_ffnn.py
        --workdir=/tmp/ffnn_k3 --config.framework=keras3   (Keras 3 path)
    sbp-train --config=configs/cifar10_resnet32_stable.py
        --workdir=gs://bucket/r32 --strategy=tpu --tpu=my-tpu

(one command each; shown over several lines).

Rerunning the same command on an interrupted workdir resumes from the last
completed epoch; on a finished workdir it prints the stored metrics (pass
--overwrite to train again). See docs/training.md.
"""

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow)

import json

from absl import app
from absl import flags

from sbp_tf import cli
from sbp_tf import log

_F = {}  # flag holders, defined by define_flags()


def define_flags():
  """Defines the binary's flags (at run time, so importing defines none)."""
  if _F:
    return
  cli.define_experiment_flags(
      _F, config_help="Experiment config: a file, or the name of one in "
      "configs/ (cpu_fashion_mnist_ffnn or configs/cpu_fashion_mnist_ffnn.py, "
      "from any folder); override fields with --config.<field>=<value>.",
      workdir_help="Output folder of the run.",
      strategy_help="Distribution strategy (auto: TPU > several GPUs > one "
      "device).",
      overwrite_help="Discard an existing run in --workdir.",
      lock_config=True)
  _F["verbose"] = flags.DEFINE_integer(
      "verbose", None, "Keras progress: 1 = bars, 2 = one line per epoch, "
      "0 = silent (default: config.train.verbose, where 2 becomes a bar when "
      "stdout is a terminal).")
  _F["num_cpu_devices"] = flags.DEFINE_integer(
      "num_cpu_devices", 0, "Split the CPU into this many logical devices "
      "(with --strategy=mirrored: a multi-replica run on a CPU-only machine).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_absl_logs()
  # pylint: disable=g-import-not-at-top
  from sbp_tf import config as sbp_config
  from sbp_tf import experiment
  from sbp_tf.data.sources import DataNotFoundError
  from sbp_tf import strategy as sbp_strategy
  from sbp_tf.training import workdir as wd_lib
  sbp_strategy.split_cpu(_F["num_cpu_devices"].value)  # before TF starts
  cfg = _F["config"].value
  if _F["verbose"].value is not None:
    cfg.train.verbose = _F["verbose"].value
  try:
    cfg = sbp_config.resolve(cfg)  # fails on bad fields before any work
  except (ValueError, TypeError) as e:
    cli.fail(str(e))
  if _F["verbose"].value is None:
    # Configs ask for epoch lines (log files); a terminal gets the bar.
    cfg.train.verbose = log.fit_verbosity(cfg.train.verbose)
  strategy = sbp_strategy.get(_F["strategy"].value, tpu=_F["tpu"].value)
  try:
    # e.g. framework keras3 under a multi-replica strategy: one line, exit 1.
    experiment.check_strategy(cfg, strategy)
  except ValueError as e:
    cli.fail(str(e))
  try:
    metrics = experiment.run(cfg, _F["workdir"].value, strategy=strategy,
                             overwrite=_F["overwrite"].value)
  except (wd_lib.WorkdirError, DataNotFoundError,
          sbp_config.ConfigError) as e:
    cli.fail(str(e))  # a user-fixable state: no traceback, exit 1
  # The binary's result, not a log line: plain JSON on stdout (pipeable).
  print(json.dumps(metrics, indent=1, sort_keys=True, default=str))


def run_main():
  """Console-script entry point (``sbp-train``)."""
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(__doc__))


if __name__ == "__main__":
  run_main()
