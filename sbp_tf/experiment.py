"""The one training loop: prune at init, train with tfmot masks, evaluate.

``run`` is used by ``sbp_tf.train`` (CLI), ``sbp_tf.tune`` (one call per
trial) and ``tools/reproduce.py`` (one call per grid cell).

Usage::

    from sbp_tf import config as sbp_config, experiment
    cfg = sbp_config.load_file("configs/cpu_fashion_mnist.py",
                               {"train.epochs": 2})
    metrics = experiment.run(cfg, "/tmp/fmnist_run")
    metrics["test_accuracy"], metrics["sparsity"]

Steps: validate config -> build model (strategy scope) -> create workdir and
write the config -> load data -> prune at init with the saliency computed on
the global batch -> save masks and per-layer report -> wrap for tfmot ->
compile -> fit (checkpoint + metrics + state each epoch) -> evaluate -> save
wrapped and stripped models and a .tflite. Rerunning on an interrupted
workdir resumes from the last completed epoch (masks and optimizer state
restored, no re-pruning); on a finished one it returns the stored metrics.
"""

import importlib.util
import inspect
import time
from typing import Any, Dict, Optional

import numpy as np

from sbp_tf import config as sbp_config
from sbp_tf import strategy as sbp_strategy
from sbp_tf.compat import keras, tf
from sbp_tf.training import report as report_lib
from sbp_tf.training import workdir as wd_lib


def _say(msg):
  # Printed, not logged: library users rarely configure logging, and these
  # few lines (pruning, resume, done) are what a person watching needs.
  print(f"[sbp_tf] {msg}", flush=True)


def model_options(config) -> Dict[str, Any]:
  """``config.model.options`` without the unset (None) entries."""
  return {k: v for k, v in config.model.options.items() if v is not None}


def build_model(config, info):
  """Builds ``config.model`` for ``info`` (float32 logits under mixed precision).

  Logits ``z = f(x; W)`` come from ``sbp_tf.models.build``; under a mixed
  policy they are cast to float32 before the loss.
  """
  from sbp_tf import models  # pylint: disable=g-import-not-at-top
  opts = model_options(config)
  if "seed" in models.options(config.model.name):
    opts.setdefault("seed", config.seed)  # same init on every replica/worker
  model = models.build(config.model.name, info.num_classes,
                       tuple(info.input_shape), **opts)
  if config.train.mixed_precision and model.outputs[0].dtype != tf.float32:
    # Softmax cross-entropy in float16 overflows; cast the logits back.
    out = keras.layers.Activation("linear", dtype="float32",
                                  name="logits_float32")(model.outputs[0])
    model = keras.Model(model.inputs, out, name=model.name)
  return model


def loss_fn():
  """The project-wide loss: sparse softmax cross-entropy on logits."""
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_optimizer(config):
  """SGD (momentum, optional Nesterov) or Adam; decoupled decay if configured.

  With ``weight_decay_mode='decoupled'`` the update adds ``-lr * wd * W``
  (tf_keras' optimizer ``weight_decay``); ``'l2'`` adds ``wd/2 * ||W||^2`` to
  the loss instead (see :func:`add_l2`).
  """
  t = config.train
  wd = t.weight_decay if t.weight_decay_mode == "decoupled" else None
  if t.optimizer == "sgd":
    opt = keras.optimizers.SGD(t.lr, momentum=t.momentum, nesterov=t.nesterov,
                               weight_decay=wd)
  else:
    opt = keras.optimizers.Adam(t.lr, weight_decay=wd)
  if wd:
    # Batch-norm scales/offsets and biases are not decayed (as in the paper).
    opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
  return opt


def add_l2(model, weight_decay: float) -> None:
  """Adds the loss term ``weight_decay / 2 * sum_k ||W_k||^2`` over kernels.

  The sum runs over the prunable kernels (Dense/Conv); its gradient
  ``weight_decay * W`` equals PyTorch SGD's coupled ``weight_decay``.
  """
  if not weight_decay:
    return
  from sbp_tf.pruning import targets  # pylint: disable=g-import-not-at-top
  kernels = [t.variable for t in targets.prunable_targets(model)]
  model.add_loss(lambda: 0.5 * weight_decay * tf.add_n(
      [tf.reduce_sum(tf.square(tf.cast(k, tf.float32))) for k in kernels]))


def _global_batch(config, strategy) -> int:
  t = config.train
  return t.batch_size * (strategy.num_replicas_in_sync
                         if t.per_replica_batch_scaling else 1)


def _load(config, split, batch_size, *, shuffle, augment, limit,
          start_step=None, with_info=False):
  from sbp_tf import data  # pylint: disable=g-import-not-at-top
  d = config.dataset
  ds, info = data.load(d.name, split, batch_size=batch_size,
                       data_dir=d.data_dir, shuffle=shuffle, augment=augment,
                       seed=config.seed, limit=limit, cache_dir=d.cache_dir,
                       start_step=start_step)
  return (ds, info) if with_info else ds


def _train_stream(config, batch, initial_epoch):
  """(endless train batches from epoch ``initial_epoch`` on, steps per epoch).

  Pass d over the data is shuffled and augmented by seeds that depend only on
  (config.seed, d), and Keras epoch e consumes batches [e*S, (e+1)*S) of the
  stream (S = train.steps_per_epoch, or one pass), so a run resumed after
  any epoch trains on exactly the batches of the uninterrupted run.
  """
  from sbp_tf.data import preprocess  # pylint: disable=g-import-not-at-top
  t, d = config.train, config.dataset
  ds, info = _load(config, "train", batch, shuffle=True, augment=d.augment,
                   limit=d.limit_train, start_step=0, with_info=True)
  size = info.size or min(d.limit_train or info.num_examples["train"],
                          info.num_examples["train"])
  steps = t.steps_per_epoch or preprocess.batches_per_epoch(size, batch)
  if initial_epoch:  # the pass length is known now: position the stream
    ds, _ = _load(config, "train", batch, shuffle=True, augment=d.augment,
                  limit=d.limit_train, start_step=initial_epoch * steps,
                  with_info=True)
  return ds, steps


def _call_prune(model, config, data, strategy):
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  p = config.prune
  kwargs = dict(loss=loss_fn(), scope=p.scope, num_batches=p.num_batches,
                rescale=p.rescale, rounds=p.rounds, seed=config.seed,
                keep_first=p.keep_first, keep_last=p.keep_last,
                on_collapse=p.on_collapse)
  params = inspect.signature(pruning.prune).parameters
  if "strategy" in params:
    kwargs["strategy"] = strategy
  return pruning.prune(model, p.method, p.sparsity, data=data, **kwargs)


def at_init_diagnostics(result) -> Dict[str, Any]:
  """The pruned network's state at init, before any training step.

  ``fully_pruned_layers``: layers whose kernel keeps no weight;
  ``connected`` / ``reachable_fraction``: whether (and for which fraction
  of outputs) a path of kept weights links the input to the output
  (``pruning.diagnostics.connectivity``); ``kept_weights`` / ``total_weights``
  over the prunable kernels; ``critical_sparsity``: the largest sparsity at
  which this score keeps every layer alive.
  """
  d = result.diagnostics
  return dict(
      fully_pruned_layers=len(d["collapsed"]),
      collapsed=list(d["collapsed"]),
      connected=d["connected"],
      reachable_fraction=d["reachable_fraction"],
      kept_weights=int(result.masks.kept()),
      total_weights=int(result.masks.size()),
      critical_sparsity=float(d["critical_sparsity"]))


def best_epoch_accuracy(rows) -> Dict[str, Any]:
  """``max_e val_accuracy_e`` over the per-epoch rows, with its epoch.

  The validation set of these runs is the test split, so this is the
  best-epoch test accuracy (what the paper's authors' code reports), not a
  held-out model selection. Empty when no epoch was validated.
  """
  vals = [(r.get("val_accuracy"), i + 1) for i, r in enumerate(rows or [])
          if r.get("val_accuracy") is not None]
  if not vals:
    return {}
  best, epoch = max(vals, key=lambda t: (t[0], -t[1]))
  return dict(best_test_accuracy=float(best), best_epoch=int(epoch))


def _measured_sparsity(variables) -> float:
  zeros = sum(int(np.sum(v.numpy() == 0)) for v in variables)
  total = sum(int(np.prod(v.shape)) for v in variables)
  return zeros / max(total, 1)


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
    ValueError: invalid config (before anything is written) or a workdir
      holding a different experiment.
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
  is_chief, task_id = sbp_strategy.task_info(strategy)
  wd = wd_lib.Workdir(workdir if is_chief else
                      f"{workdir}/.worker{task_id}")
  # One run per workdir: held for the whole run, released on any exit.
  with wd.lock():
    return _run_locked(cfg, wd, strategy, overwrite, t_start)


def _run_locked(cfg, wd, strategy, overwrite, t_start):
  """``run`` once the workdir lock is held."""
  # --overwrite only ever deletes an sbp_tf workdir, never a foreign folder.
  overwrite = overwrite and wd.exists()
  if overwrite:
    foreign = wd.foreign_entries()
    if foreign:  # refuse before any work, deleting nothing
      wd.clear()
  else:
    wd.check_compatible(cfg)
  state = (wd.state() if not overwrite
           else {"status": wd_lib.NEW, "epochs_done": 0})
  rebuild_results = False
  if state["status"] == wd_lib.FINISHED and not overwrite:
    if (wd / "results.json").exists():
      try:
        out = wd.results()
      except wd_lib.WorkdirError as e:
        _say(f"{e} Rebuilding it: evaluating the final checkpoint again.")
        rebuild_results = True
      else:
        _say(f"{wd.path} already holds a finished run "
             f"({state['epochs_done']} epochs); returning its stored "
             "metrics. Pass overwrite=True (--overwrite) to train again.")
        out["already_finished"] = True
        return out
    else:
      _say(f"{wd.path / 'results.json'} is missing; rebuilding it by "
           "evaluating the final checkpoint again.")
      rebuild_results = True
  if not overwrite and wd.exists():
    wd.metrics()  # verified (or rebuilt from metrics.csv) before any work

  from sbp_tf import data as sbp_data  # pylint: disable=g-import-not-at-top
  from sbp_tf import pruning  # pylint: disable=g-import-not-at-top
  from sbp_tf import tfmot as sbp_tfmot  # pylint: disable=g-import-not-at-top

  info = sbp_data.info(cfg.dataset.name)
  keras.utils.set_random_seed(cfg.seed)
  batch = _global_batch(cfg, strategy)
  with sbp_strategy.precision_policy(cfg.train.mixed_precision, strategy):
    with strategy.scope():
      model = build_model(cfg, info)  # bad model options fail here, pre-write
    # Data not found (a wrong data_dir included) fails here, pre-write too.
    test_ds, test_info = _load(cfg, "test",
                               cfg.train.eval_batch_size or batch,
                               shuffle=False, augment=False,
                               limit=cfg.dataset.limit_test, with_info=True)
    _say(f"data: {cfg.dataset.name} from {test_info.source}")
    if overwrite:
      wd.clear()
    wd.create(cfg)
    state = wd.state()

    masks_path = wd / "masks.npz"
    resumed = (state["status"] in (wd_lib.PRUNED, wd_lib.TRAINING)
               or rebuild_results)
    if resumed and not masks_path.exists() and wd.has_checkpoints():
      raise wd_lib.WorkdirError(
          f"{masks_path} is missing but {wd.ckpt_dir} holds checkpoints "
          f"({state['epochs_done']} epochs done); refusing to re-prune "
          "silently. Fix: restore masks.npz, or pass --overwrite "
          "(overwrite=True) to start over.")
    if resumed and masks_path.exists():
      try:
        masks = pruning.Masks.load(str(masks_path))
      except Exception as e:  # pylint: disable=broad-except
        raise wd_lib.WorkdirError(
            f"{masks_path} is damaged ({type(e).__name__}: {e}). Fix: "
            "restore masks.npz, or pass --overwrite (overwrite=True) to "
            "start over.") from None
      masks.validate(model)
      _say(f"resuming {wd.path} after epoch {state['epochs_done']} "
           f"(masks from masks.npz, density {masks.density():.4f})")
    else:
      resumed = False
      prune_ds = _load(cfg, "train", cfg.prune.batch_size or batch,
                       shuffle=True, augment=False,
                       limit=cfg.dataset.limit_train)
      t0 = time.time()
      result = _call_prune(model, cfg, prune_ds, strategy)
      masks = result.masks
      _say(f"pruned {cfg.model.name} with {cfg.prune.method} to sparsity "
           f"{1 - masks.density():.4f} in {time.time() - t0:.1f} s")
      masks.save(str(masks_path))
      report_lib.write_reports(masks, wd.path, "prune_report")
      wd_lib.write_json(wd / "prune_diagnostics.json",
                        at_init_diagnostics(result))

    with strategy.scope():
      wrapped = sbp_tfmot.wrap(model, masks)
      if cfg.train.weight_decay_mode == "l2":
        add_l2(wrapped, cfg.train.weight_decay)
      wrapped.compile(
          optimizer=make_optimizer(cfg), loss=loss_fn(),
          metrics=["accuracy",
                   keras.metrics.SparseCategoricalCrossentropy(
                       from_logits=True, name="xent")])
      # Slots exist before restore, so momentum is restored, not re-zeroed.
      opt = wrapped.optimizer
      getattr(opt, "inner_optimizer", opt).build(wrapped.trainable_variables)
    ckpt = tf.train.Checkpoint(model=wrapped, optimizer=wrapped.optimizer)
    manager = tf.train.CheckpointManager(ckpt, str(wd.ckpt_dir),
                                         max_to_keep=2,
                                         checkpoint_name="ckpt")
    initial_epoch = 0
    init_path = str(wd.ckpt_dir / "init")
    if resumed:
      initial_epoch = _restore_newest_intact(ckpt, wd,
                                             int(state["epochs_done"]))
    else:
      # The pruned (and rescaled) init, kept for good: resuming before the
      # first epoch must not depend on re-running the init and the pruning.
      ckpt.write(init_path)
      wd.set_state(wd_lib.PRUNED, 0, epochs=cfg.train.epochs)

    t = cfg.train
    from sbp_tf import callbacks as cb_lib  # pylint: disable=g-import-not-at-top
    from sbp_tf.pruning import targets  # pylint: disable=g-import-not-at-top
    kernels = [x.variable for x in targets.prunable_targets(wrapped)]
    callbacks = list(sbp_tfmot.callbacks()) + [
        cb_lib.StepDecay(t.lr, t.epochs, t.lr_decay_at, t.lr_decay_factor)]
    if _has_tensorboard():
      callbacks.append(keras.callbacks.TensorBoard(
          str(wd / "tensorboard"), update_freq="epoch", profile_batch=0))
    elif not resumed:
      _say("TensorBoard logs skipped: the tensorboard package is not "
           "installed (pip install tensorboard).")
    callbacks.append(cb_lib.EpochCheckpoint(wd, manager, t.epochs, kernels))
    t_fit = time.time()
    if initial_epoch < t.epochs:
      fit_ds, steps = _train_stream(cfg, batch, initial_epoch)
      wrapped.fit(fit_ds, epochs=t.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps,
                  validation_data=test_ds if t.validate_each_epoch else None,
                  callbacks=callbacks, verbose=t.verbose)
    fit_s = time.time() - t_fit
    ev = wrapped.evaluate(test_ds, verbose=0, return_dict=True)

    stripped = sbp_tfmot.strip(wrapped)
    metrics = dict(
        test_accuracy=float(ev["accuracy"]), test_loss=float(ev["xent"]),
        test_objective=float(ev["loss"]),
        sparsity=float(1 - masks.density()),
        weight_sparsity=_measured_sparsity(kernels),
        epochs_done=int(t.epochs), resumed_from_epoch=initial_epoch,
        num_replicas=int(strategy.num_replicas_in_sync), global_batch=batch,
        fit_time_s=fit_s)
    rows = wd.metrics()
    if rows:
      metrics["train_accuracy"] = rows[-1].get("accuracy")
    metrics.update(best_epoch_accuracy(rows))
    diag_path = wd / "prune_diagnostics.json"
    if diag_path.exists():
      try:
        metrics["at_init"] = wd_lib.read_json(
            diag_path, "delete it; it is rewritten when the run is pruned "
            "again (--overwrite).")
      except wd_lib.WorkdirError as e:  # a by-product: never lose the run
        _say(f"at-init diagnostics skipped: {e}")
    wrapped.save(str(wd / "model_wrapped.keras"))
    stripped.save(str(wd / "model.keras"))
    if cfg.export_tflite:
      metrics["tflite"] = _export_tflite(stripped, wd / "model.tflite")
    metrics["wall_time_s"] = time.time() - t_start
    wd_lib.write_json(wd / "results.json", metrics)
    wd.set_state(wd_lib.FINISHED, t.epochs, epochs=t.epochs)
  _say(f"done: test accuracy {metrics['test_accuracy']:.4f}, sparsity "
       f"{metrics['sparsity']:.4f}, {metrics['wall_time_s']:.1f} s "
       f"-> {wd.path}")
  return metrics


def _restore_newest_intact(ckpt, wd, epochs_done: int) -> int:
  """Restores ``ckpt-<epochs_done>``, else the newest intact older one.

  Falls back through the older ``ckpt-N`` kept and then ``init`` when a
  checkpoint is missing or damaged (truncated data, garbage or missing
  index), saying which and how many epochs that costs. Returns the epoch
  restored; raises WorkdirError naming the fix when none is intact.
  """
  candidates = [n for n in wd.checkpoint_epochs() if n < epochs_done]
  candidates = [epochs_done] + candidates if epochs_done else []
  candidates.append(0)
  failed = []
  for n in candidates:
    path = f"{wd.ckpt_dir}/ckpt-{n}" if n else str(wd.ckpt_dir / "init")
    name = f"ckpt-{n}" if n else "init"
    try:
      if not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"{path}.index does not exist")
      if n:
        ckpt.restore(path).assert_existing_objects_matched()
      else:  # written by ckpt.write, which has no save_counter: read() it
        ckpt.read(path).assert_existing_objects_matched()
    except Exception as e:  # pylint: disable=broad-except
      msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
      failed.append(f"{name} ({type(e).__name__}: {msg[:160]})")
      continue
    if failed:
      _say(f"checkpoint {'; '.join(failed)} is missing or damaged; resuming "
           f"from {name} (epoch {n}) instead: {epochs_done - n} epoch(s) "
           "of training will be redone.")
    return n
  raise wd_lib.WorkdirError(
      f"no intact checkpoint in {wd.ckpt_dir} to resume from: "
      f"{'; '.join(failed)}. Fix: pass --overwrite (overwrite=True) to "
      "start over.")


def _has_tensorboard() -> bool:
  # tf.summary writes nothing without the tensorboard package (TF >= 2.16
  # no longer depends on it).
  return importlib.util.find_spec("tensorboard") is not None


def _export_tflite(model, path) -> Optional[str]:
  try:
    from sbp_tf import export  # pylint: disable=g-import-not-at-top
    export.to_tflite(model, str(path))
    return str(path)
  except Exception as e:  # pylint: disable=broad-except
    # Export is a by-product; a converter gap must not lose a trained run.
    _say(f"tflite export skipped: {type(e).__name__}: {e}")
    return None
