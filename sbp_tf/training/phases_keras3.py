"""The experiment's phases for ``config.framework = "keras3"``.

The same workdir, files and guarantees as the tf_keras phases
(:mod:`sbp_tf.training.phases`), trained through the Keras 3 front end
:mod:`sbp_tf.keras3`: the Keras 3 zoo model, ``keras3.prune``, masks kept by
``keras3.mask`` (kernel constraints, no wrappers), a Keras 3 optimizer and
Keras 3 callbacks. Every framework-free piece is the tf_keras phases' own:
open_workdir, the workdir, record, masks.npz and the reports, the at-init
diagnostics, the epoch checkpoints (``tf.train.Checkpoint`` tracks Keras 3
models and optimizers under the TensorFlow backend) and their resume, the
resumable train stream and the final metrics::

    open_workdir -> build -> obtain_masks -> prepare_training -> fit
                 -> finalize -> export (opt-in) -> record

Differences: no ``model_wrapped.keras`` (``model.keras`` is the masked
model itself, masks inside), one device only, float32 only.

Usage::

    from sbp_tf.training import phases, phases_keras3
    run = phases.Run(cfg=cfg, wd=wd, strategy=tf.distribute.get_strategy())
    for phase in phases_keras3.PHASES:
      phase(run)
"""

import functools

import keras

from sbp_tf import callbacks as cb_lib
from sbp_tf import keras3
from sbp_tf.keras3.kit import KERAS3
from sbp_tf.pruning.masks import Masks
from sbp_tf.training import phases
from sbp_tf.training import setup


def build_model(config, info):
  """``keras3.models.build(config.model.name, ...)`` with the config's model
  options and ``config.seed`` (same names and options as the tf_keras zoo)."""
  keras.utils.set_random_seed(config.seed)
  opts = setup.model_options(config)
  if "seed" in keras3.models.options(config.model.name):
    opts.setdefault("seed", config.seed)
  return keras3.models.build(config.model.name, info.num_classes,
                             tuple(info.input_shape), **opts)


def _validate(model, masks) -> None:
  Masks(masks).validate(model, complete=False, kit=KERAS3)


build = functools.partial(phases.build, make_model=build_model)
obtain_masks = functools.partial(
    phases.obtain_masks, validate=_validate,
    prune=functools.partial(phases.prune_at_init, prune_fn=keras3.prune))


def _kernels(model):
  return [t.variable for t in keras3.prunable_targets(model)]


def add_l2(model, weight_decay: float) -> None:
  """``weight_decay / 2 * sum_k ||W_k||^2`` over the prunable kernels, as
  Keras 3 variable regularizers (gradient ``weight_decay * W``, the tf_keras
  path's ``setup.add_l2``)."""
  if not weight_decay:
    return
  for v in _kernels(model):
    v.regularizer = keras.regularizers.L2(0.5 * weight_decay)


def prepare_training(run: phases.Run) -> None:
  """Masks the kernels (``keras3.mask``), compiles with a Keras 3 optimizer,
  builds its slots, and restores the newest intact checkpoint (resume) or
  writes the pruned init."""
  cfg, model = run.cfg, run.model
  keras3.mask(model, run.masks)
  if cfg.train.weight_decay_mode == "l2":
    add_l2(model, cfg.train.weight_decay)
  opt = setup.make_optimizer(cfg, optimizers=keras.optimizers)
  model.compile(
      optimizer=opt,
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(
          from_logits=True, name="xent")])
  # Slots exist before restore, so momentum is restored, not re-zeroed.
  opt.build(model.trainable_variables)
  run.wrapped = model  # the model that trains (no wrappers on this path)
  phases.open_checkpoints(run, model, opt,
                          targets=keras3.prunable_targets(model))


class StepDecay(keras.callbacks.Callback):
  """Keras 3 twin of :class:`sbp_tf.callbacks.StepDecay`: the learning rate
  :func:`sbp_tf.callbacks.step_lr` at each epoch start, logged as ``lr``."""

  def __init__(self, lr, epochs, decay_at=(0.5, 0.75), factor=0.1):
    super().__init__()
    self.lr, self.epochs = lr, epochs
    self.decay_at, self.factor = tuple(decay_at), factor

  def on_epoch_begin(self, epoch, logs=None):
    self.model.optimizer.learning_rate = cb_lib.step_lr(
        epoch, self.lr, self.epochs, self.decay_at, self.factor)

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["lr"] = float(keras.ops.convert_to_numpy(
          self.model.optimizer.learning_rate))


class EpochCheckpoint(keras.callbacks.Callback):
  """Keras 3 twin of :class:`sbp_tf.callbacks.EpochCheckpoint`: after each
  epoch, checkpoint, then metrics row, then state (the same code)."""

  def __init__(self, workdir, manager, epochs, targets=()):
    super().__init__()
    self.workdir, self.manager, self.epochs = workdir, manager, epochs
    self.targets = list(targets)
    self._t0 = None

  # The bodies read only this object's fields, not Keras: shared verbatim.
  on_epoch_begin = cb_lib.EpochCheckpoint.on_epoch_begin
  on_epoch_end = cb_lib.EpochCheckpoint.on_epoch_end


def fit(run: phases.Run) -> None:
  """``model.fit`` from ``run.initial_epoch`` to ``train.epochs`` with the
  step decay, TensorBoard if installed and the per-epoch checkpoint."""
  t = run.cfg.train
  callbacks = [StepDecay(t.lr, t.epochs, t.lr_decay_at, t.lr_decay_factor)]
  callbacks += phases.tensorboard(run, keras, {
      x.key: x.variable for x in keras3.prunable_targets(run.model)})
  callbacks.append(EpochCheckpoint(run.wd, run.manager, t.epochs,
                                   _kernels(run.model)))
  phases.fit_model(run, run.model, callbacks)


def finalize(run: phases.Run) -> None:
  """Evaluates on the test split, fills ``run.metrics`` and saves
  ``model.keras`` (the masks inside, as kernel constraints)."""
  ev = run.model.evaluate(run.test_ds, verbose=0, return_dict=True)
  run.stripped = run.model  # what export converts: nothing to strip
  run.metrics.update(phases.final_metrics(run, ev, _kernels(run.model)))
  run.metrics["framework"] = "keras3"
  run.model.save(str(run.wd / "model.keras"))


def _to_tflite(model, path):
  # compare_dense/time_runs off: the run reports the file, not a benchmark.
  return keras3.export.to_tflite(model, path, compare_dense=False,
                                 time_runs=0)


export = functools.partial(phases.export, to_tflite=_to_tflite)

PHASES = (build, obtain_masks, prepare_training, fit, finalize, export)


def check_strategy(strategy) -> None:
  """Raises ValueError for a multi-replica strategy (one device only)."""
  n = int(strategy.num_replicas_in_sync)
  if n > 1:
    raise ValueError(
        f"framework='keras3' trains on one device, but the strategy is "
        f"{type(strategy).__name__} with {n} replica(s). Fix: pass "
        "--strategy=default (no strategy), or use framework='tf_keras' for "
        "distributed training.")
