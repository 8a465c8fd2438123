"""The one training loop: prune at init, train with tfmot masks, evaluate.

``run`` is used by ``sbp_tf.train`` (CLI), ``sbp_tf.tune`` (one call per
trial) and ``tools/reproduce.py`` (one call per grid cell).

Usage::

    from sbp_tf import config as sbp_config, experiment
    cfg = sbp_config.load_file("configs/cpu_fashion_mnist.py",
                               {"train.epochs": 2})
    metrics = experiment.run(cfg, "/tmp/fmnist_run")
    metrics["test_accuracy"], metrics["sparsity"]

``run`` is a short composition of the phases in
:mod:`sbp_tf.training.phases` (open the workdir, build, obtain masks,
prepare training, fit, finalize, export, record), each a public function
that can be called or replaced alone. ``config.framework = "keras3"``
runs the same phases through the Keras 3 front end ``sbp_tf.keras3``
(:mod:`sbp_tf.training.frameworks`: same workdir, resume and results; one
device). Rerunning on an interrupted workdir
resumes from the last completed epoch (masks and optimizer state restored,
no re-pruning); on a finished one it returns the stored metrics.
"""

import time
from typing import Any, Dict

from sbp_tf import config as sbp_config
from sbp_tf import pruning
from sbp_tf import strategy as sbp_strategy
from sbp_tf.compat import tf
from sbp_tf.training import frameworks
from sbp_tf.training import phases
from sbp_tf.training import workdir as wd_lib
# The training ingredients, importable from here as before.
from sbp_tf.training.phases import (  # noqa: F401
    at_init_diagnostics, best_epoch_accuracy)
from sbp_tf.training.setup import (  # noqa: F401
    add_l2, build_model, make_optimizer, method_options, model_options)

# The project-wide loss: sparse softmax cross-entropy on logits.
loss_fn = pruning.default_loss

PHASES = (phases.build, phases.obtain_masks, phases.prepare_training,
          phases.fit, phases.finalize, phases.export)


def phases_for(cfg) -> tuple:
  """The phases of ``cfg``: :data:`PHASES`, on either Keras (the run's
  :class:`~sbp_tf.training.frameworks.Framework` holds what differs)."""
  del cfg  # one set of phases for every framework
  return PHASES


def check_strategy(cfg, strategy) -> None:
  """Raises ValueError when ``cfg.framework`` cannot run under ``strategy``
  (keras3: one device only), before anything is written."""
  frameworks.of(cfg).check_strategy(strategy)


def run(config, workdir, *, strategy=None, overwrite: bool = False
        ) -> Dict[str, Any]:
  """Runs (or resumes) one experiment in ``workdir``; returns final metrics.

  Training minimises ``mean CE(logits, y) + wd/2 * sum ||W||^2`` (``l2``
  decay) with masked weights held at zero; the learning rate follows
  ``lr * 0.1**k`` with k the decay boundaries passed.

  Args:
    config: experiment ``ConfigDict`` (see ``sbp_tf.config.defaults``).
    workdir: output folder; created if missing.
    strategy: a ``tf.distribute.Strategy`` (None: the default strategy).
      Under multi-worker, the chief writes ``workdir``, other workers write
      the same files to ``workdir/.worker<id>``.
    overwrite: discard a finished or different run held in ``workdir``
      (deletes only the files sbp_tf wrote, and refuses when the folder
      holds anything else).

  Returns:
    ``{"test_accuracy", "test_loss", "sparsity", "weight_sparsity",
    "epochs_done", "wall_time_s", "resumed_from_epoch", ...}``.

  Raises:
    ValueError: invalid config (before anything is written), a workdir
      holding a different experiment, or framework keras3 under a
      multi-replica strategy.
    sbp_tf.training.workdir.WorkdirError (a ValueError): the workdir is
      locked by another live run, is not sbp_tf's, or is damaged beyond
      what resume can repair (the message names the file and the fix).

  Example::

      metrics = run(sbp_config.load_file("configs/cpu_fashion_mnist.py"),
                    "/tmp/run")
  """
  t_start = time.time()
  cfg = sbp_config.resolve(config)
  if strategy is None:
    strategy = tf.distribute.get_strategy()
  check_strategy(cfg, strategy)
  is_chief, task_id = sbp_strategy.task_info(strategy)
  wd = wd_lib.Workdir(workdir if is_chief else
                      f"{workdir}/.worker{task_id}")
  run_state = phases.Run(cfg=cfg, wd=wd, strategy=strategy,
                         overwrite=overwrite, t_start=t_start)
  # One run per workdir: held for the whole run, released on any exit; a
  # full disk ends it with a one-line error (the workdir stays consistent).
  with wd.disk_full_is_an_error(), wd.lock():
    stored = phases.open_workdir(run_state)
    if stored is not None:
      return stored
    with sbp_strategy.precision_policy(cfg.train.mixed_precision, strategy):
      for phase in phases_for(cfg):
        phase(run_state)
      return phases.record(run_state)
