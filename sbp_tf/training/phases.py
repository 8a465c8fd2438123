"""The phases of one experiment, each reading and writing its workdir.

``sbp_tf.experiment.run`` composes them; each can be called (or replaced)
alone on a :class:`Run`::

    open_workdir -> build -> obtain_masks -> prepare_training -> fit
                 -> finalize -> export (opt-in) -> record

* :func:`open_workdir`: the workdir's state; a finished run's stored
  metrics end the experiment here.
* :func:`build`: the model (strategy scope) and the test data, both checked
  before anything is written; then the workdir is created.
* :func:`obtain_masks`: masks.npz of an interrupted run, or prune at init
  (masks, per-layer report, at-init diagnostics written).
* :func:`prepare_training`: tfmot wrapping, compile, optimizer slots, and
  the checkpoint to resume from (or the pruned init written).
* :func:`fit`: ``model.fit`` with the epoch checkpoints.
* :func:`finalize`: evaluation, metrics, the wrapped and stripped models.
* :func:`export`: the sparse TFLite file, when ``config.export_tflite``.
* :func:`record`: results.json and the finished state, written last.

The same phases run both Keras paths: what differs between tf_keras
(tfmot wrappers) and Keras 3 (masks as kernel constraints) is the run's
:class:`sbp_tf.training.frameworks.Framework` (``config.framework``), a
dozen hooks; everything else here is written once.
"""

import dataclasses
import importlib.util
import time
from typing import Any, Dict, Optional

import numpy as np

from sbp_tf import callbacks as cb_lib
from sbp_tf import config as sbp_config
from sbp_tf import data as sbp_data
from sbp_tf import log
from sbp_tf import pruning
from sbp_tf.compat import tf
from sbp_tf.training import frameworks
from sbp_tf.training import report as report_lib
from sbp_tf.training import setup
from sbp_tf.training import summaries
from sbp_tf.training import workdir as wd_lib


@dataclasses.dataclass
class Run:
  """What the phases share: the inputs, then what each phase produces."""
  cfg: Any
  wd: wd_lib.Workdir
  strategy: Any
  overwrite: bool = False
  t_start: float = dataclasses.field(default_factory=time.time)
  rebuild_results: bool = False   # finished, but results.json must be redone
  resumed: bool = False
  batch: int = 0
  model: Any = None
  test_ds: Any = None
  masks: Optional[pruning.Masks] = None
  wrapped: Any = None
  checkpoint: Any = None
  manager: Any = None
  initial_epoch: int = 0
  fit_s: float = 0.0
  stripped: Any = None
  metrics: Dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def framework(self) -> frameworks.Framework:
    """The hooks of ``cfg.framework`` (tf_keras or Keras 3)."""
    return frameworks.of(self.cfg)


def open_workdir(run: Run) -> Optional[Dict[str, Any]]:
  """Checks the workdir; returns a finished run's stored metrics, else None.

  ``--overwrite`` only ever deletes an sbp_tf workdir, never a foreign
  folder (it refuses first, deleting nothing). A finished run whose
  results.json is missing or damaged is marked for rebuilding.
  """
  wd = run.wd
  run.overwrite = run.overwrite and wd.exists()
  if run.overwrite:
    if wd.foreign_entries():
      wd.clear()  # raises, listing them, before any work
    return None
  wd.check_compatible(run.cfg)
  state = wd.state()
  if state["status"] == wd_lib.FINISHED:
    wd.metrics()  # a damaged metrics.json is rebuilt from metrics.csv
    missing = [n for n in ("results.json",) + final_models(run.cfg)
               if not (wd / n).exists()]
    if missing:
      log.say(f"{', '.join(missing)} of the finished run in {wd.path} "
              f"{'is' if len(missing) == 1 else 'are'} missing; rebuilding "
              "the final models and results.json by evaluating the final "
              "checkpoint again (no training).")
      run.rebuild_results = True
    else:
      try:
        out = wd.results()
      except wd_lib.WorkdirError as e:
        log.say(f"{e} Rebuilding it: evaluating the final checkpoint again.")
        run.rebuild_results = True
      else:
        log.say(f"{wd.path} already holds a finished run "
                f"({state['epochs_done']} epochs); returning its stored "
                "metrics. Pass overwrite=True (--overwrite) to train again.")
        out["already_finished"] = True
        return out
  if wd.exists():
    wd.metrics()  # verified (or rebuilt from metrics.csv) before any work
  return None


def final_models(cfg) -> tuple:
  """The model files a finished run of ``cfg.framework`` holds."""
  return frameworks.of(cfg).final_models


def build(run: Run) -> None:
  """Builds the model (the framework's zoo, seeded) and the test data, then
  creates the workdir.

  Bad model options and missing data (a wrong data_dir included) fail
  before anything is written.
  """
  cfg = run.cfg
  info = sbp_data.info(cfg.dataset.name)
  run.batch = setup.global_batch(cfg, run.strategy)
  try:
    with run.strategy.scope():
      run.model = run.framework.build_model(cfg, info)
  except (ValueError, TypeError) as e:  # the builder's own option checks
    text = (str(e).strip().splitlines() or [""])[0]
    fix = "" if "Fix:" in text else (" Fix: correct --config.model.options."
                                     "<option> (see docs/models.md).")
    raise sbp_config.ConfigError(
        f"Invalid config: model {cfg.model.name!r} cannot be built from its "
        f"options ({text}){'' if text.endswith('.') else '.'}{fix}") from e
  run.test_ds, test_info = setup.load(
      cfg, "test", cfg.train.eval_batch_size or run.batch, shuffle=False,
      augment=False, limit=cfg.dataset.limit_test)
  log.say(f"data: {cfg.dataset.name} from {test_info.source}")
  if run.overwrite:
    run.wd.clear()
  run.wd.create(cfg)


def obtain_masks(run: Run) -> None:
  """Loads masks.npz of an interrupted run, or prunes at init.

  Pruning writes masks.npz, the per-layer report and prune_diagnostics.json.
  A resumed run without masks.npz but with checkpoints is refused: it is
  never re-pruned silently.
  """
  wd, state = run.wd, run.wd.state()
  path = wd / "masks.npz"
  run.resumed = (state["status"] in (wd_lib.PRUNED, wd_lib.TRAINING)
                 or run.rebuild_results)
  if run.resumed and not path.exists() and wd.has_checkpoints():
    raise wd_lib.WorkdirError(
        f"{path} is missing but {wd.ckpt_dir} holds checkpoints "
        f"({state['epochs_done']} epochs done); refusing to re-prune "
        "silently. Fix: restore masks.npz, or pass --overwrite "
        "(overwrite=True) to start over.")
  if run.resumed and path.exists():
    run.masks = _load_masks(path)
    run.masks.validate(run.model, kit=run.framework.kit)
    log.say(f"resuming {wd.path} after epoch {state['epochs_done']} "
            f"(masks from masks.npz, density {run.masks.density():.4f})")
    return
  run.resumed = False
  result = prune_at_init(run)
  run.masks = result.masks
  run.masks.save(str(path))
  report_lib.write_reports(run.masks, wd.path, "prune_report",
                           report=result.report)
  wd_lib.write_json(wd / "prune_diagnostics.json",
                    at_init_diagnostics(result))


def _load_masks(path) -> pruning.Masks:
  try:
    return pruning.Masks.load(str(path))
  except Exception as e:  # pylint: disable=broad-except
    raise wd_lib.WorkdirError(
        f"{path} is damaged ({type(e).__name__}: {e}). Fix: restore "
        "masks.npz, or pass --overwrite (overwrite=True) to start "
        "over.") from None


def prune_at_init(run: Run) -> pruning.PruneResult:
  """The framework's ``prune`` of ``run.model`` as ``config.prune`` says, on
  training batches of the global batch size (single-device masks)."""
  cfg, p = run.cfg, run.cfg.prune
  data, _ = setup.load(cfg, "train", p.batch_size or run.batch, shuffle=True,
                       augment=False, limit=cfg.dataset.limit_train)
  kw = dict(scope=p.scope, num_batches=p.num_batches, rescale=p.rescale,
            rounds=p.rounds, seed=cfg.seed, keep_first=p.keep_first,
            keep_last=p.keep_last, on_collapse=p.on_collapse,
            **setup.method_options(cfg), **run.framework.prune_kw(run))
  for field in ("scoring_mode", "count_rule"):  # None: prune's default
    if p.get(field) is not None:
      kw[field] = p[field]
  t0 = time.time()
  result = run.framework.prune(run.model, p.method, p.sparsity, data=data,
                               **kw)
  log.say(f"pruned {cfg.model.name} with {p.method} to sparsity "
          f"{1 - result.masks.density():.4f} in {time.time() - t0:.1f} s")
  return result


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


def prepare_training(run: Run) -> None:
  """Keeps the masks (tfmot wrappers / Keras 3 constraints), compiles,
  builds the optimizer's slots, and restores the newest intact checkpoint
  (resume) or writes the pruned init."""
  cfg, fw = run.cfg, run.framework
  K = fw.keras
  with run.strategy.scope():
    run.wrapped = fw.keep_masks(run.model, run.masks)
    if cfg.train.weight_decay_mode == "l2":
      fw.add_l2(run.wrapped, cfg.train.weight_decay)
    run.wrapped.compile(
        optimizer=setup.make_optimizer(cfg, optimizers=K.optimizers),
        loss=pruning.default_loss(K=K),
        metrics=["accuracy", K.metrics.SparseCategoricalCrossentropy(
            from_logits=True, name="xent")])
    # Slots exist before restore, so momentum is restored, not re-zeroed.
    opt = run.wrapped.optimizer
    getattr(opt, "inner_optimizer", opt).build(run.wrapped.trainable_variables)
  open_checkpoints(run, run.wrapped, run.wrapped.optimizer,
                   targets=fw.targets(run.wrapped),
                   held_masks=lambda: fw.held_masks(run.wrapped))


def open_checkpoints(run: Run, model, optimizer, *, targets=None,
                     held_masks=None) -> None:
  """The epoch checkpoints of ``model`` + ``optimizer`` (any framework whose
  objects ``tf.train.Checkpoint`` tracks): restores the newest intact one
  (resume) or writes the pruned init.

  Before restoring, ``checkpoints/`` is repaired (``Workdir.tidy_checkpoints``:
  leftover temp folders, a missing or damaged TensorFlow index). After it,
  the restored weights are checked against masks.npz
  (:func:`check_masks_match`) when the prunable ``targets`` of ``model``
  are given; ``held_masks()`` gives the masks the checkpoint restored into
  the model (tf_keras' wrappers), if any.
  """
  cfg = run.cfg
  run.wd.tidy_checkpoints()
  run.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
  run.manager = tf.train.CheckpointManager(
      run.checkpoint, str(run.wd.ckpt_dir), max_to_keep=2,
      checkpoint_name="ckpt")
  if run.resumed:
    run.initial_epoch = restore_newest_intact(
        run.checkpoint, run.wd, int(run.wd.state()["epochs_done"]))
    if targets is not None:
      check_masks_match(run, targets,
                        held_masks() if held_masks is not None else None)
  else:
    # The pruned (and rescaled) init, kept for good: resuming before the
    # first epoch must not depend on re-running the init and the pruning.
    run.checkpoint.write(str(run.wd.ckpt_dir / "init"))
    run.wd.set_state(wd_lib.PRUNED, 0, epochs=cfg.train.epochs)


def restore_newest_intact(ckpt, wd, epochs_done: int) -> int:
  """Restores ``ckpt-<epochs_done>``, else the newest intact older one.

  Falls back through the older ``ckpt-N`` kept and then ``init`` when a
  checkpoint is missing or damaged (truncated data, garbage or missing
  index), saying which and how many epochs that costs. Returns the epoch
  restored; raises WorkdirError naming the fix when none is intact.
  """
  candidates = [n for n in wd.checkpoint_epochs() if n < epochs_done]
  candidates = ([epochs_done] + candidates if epochs_done else []) + [0]
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
      log.say(f"checkpoint {'; '.join(failed)} is missing or damaged; "
              f"resuming from {name} (epoch {n}) instead: {epochs_done - n} "
              "epoch(s) of training will be redone.")
    return n
  raise wd_lib.WorkdirError(
      f"no intact checkpoint in {wd.ckpt_dir} to resume from: "
      f"{'; '.join(failed)}. Fix: pass --overwrite (overwrite=True) to "
      "start over.")


def check_masks_match(run: Run, targets, held=None) -> None:
  """Raises WorkdirError when masks.npz does not describe the restored
  checkpoint; masks.npz is the one source of truth of a resumed run.

  The checkpoint agrees with masks.npz when every weight masks.npz prunes
  is exactly 0 in the restored kernels (training keeps pruned weights at
  0) and, where the checkpoint holds masks itself (``held``: ``{key: 0/1
  array}``), they equal masks.npz's.
  """
  bad = {}
  for t in targets:
    mask = run.masks.get(t.key)
    if mask is None:
      continue
    pruned = np.asarray(mask) == 0
    n = int(np.count_nonzero(np.asarray(t.variable.numpy())[pruned]))
    if held is not None and t.key in held:
      n += int(np.count_nonzero((np.asarray(held[t.key]) == 0) != pruned))
    if n:
      bad[t.key] = n
  if not bad:
    return
  first = sorted(bad)[0]
  raise wd_lib.WorkdirError(
      f"{run.wd / 'masks.npz'} does not match the checkpoint restored after "
      f"epoch {run.initial_epoch}: {sum(bad.values())} weight(s) in "
      f"{len(bad)} layer(s) (first: {first}) are pruned by one and kept by "
      "the other, so masks.npz was replaced or comes from another run; "
      "nothing was changed. Fix: put back this run's masks.npz and rerun "
      "(it resumes), or pass --overwrite (overwrite=True) to start over.")


def fit(run: Run) -> None:
  """``model.fit`` from ``run.initial_epoch`` to ``train.epochs``: the
  framework's step callbacks (tfmot's), the step learning-rate decay,
  TensorBoard if installed and the per-epoch checkpoint (checkpoint, then
  metrics row, then state)."""
  t, fw = run.cfg.train, run.framework
  step_decay, epoch_checkpoint = cb_lib.for_keras(fw.keras)
  targets = fw.targets(run.wrapped)
  callbacks = fw.step_callbacks() + [
      step_decay(t.lr, t.epochs, t.lr_decay_at, t.lr_decay_factor)]
  callbacks += tensorboard(run, fw.keras, {x.key: x.variable for x in targets})
  callbacks.append(epoch_checkpoint(run.wd, run.manager, t.epochs,
                                    [x.variable for x in targets]))
  fit_model(run, run.wrapped, callbacks)


def tensorboard(run: Run, keras_module, weights=None) -> list:
  """``[keras_module.callbacks.TensorBoard]`` writing <workdir>/tensorboard
  and, given ``weights`` (target key -> variable), their sparsity per epoch
  in <workdir>/tensorboard/sparsity (:mod:`sbp_tf.training.summaries`), or
  ``[]`` (said once) when the tensorboard package is not installed."""
  if importlib.util.find_spec("tensorboard") is not None:
    # tf.summary writes nothing without it (TF >= 2.16 does not need it).
    out = [keras_module.callbacks.TensorBoard(
        str(run.wd / "tensorboard"), update_freq="epoch", profile_batch=0)]
    if weights:
      out.append(keras_module.callbacks.LambdaCallback(
          on_epoch_end=summaries.SparsitySummaries(
              run.wd / "tensorboard" / "sparsity", weights)))
    return out
  if not run.resumed:
    log.say("TensorBoard logs skipped: the tensorboard package is not "
            "installed (pip install tensorboard).")
  return []


def fit_model(run: Run, model, callbacks) -> None:
  """``model.fit`` from ``run.initial_epoch`` to ``train.epochs`` on the
  resumable train stream (:func:`setup.train_stream`); any framework."""
  t = run.cfg.train
  t_fit = time.time()
  if run.initial_epoch < t.epochs:
    ds, steps = setup.train_stream(run.cfg, run.batch, run.initial_epoch)
    model.fit(ds, epochs=t.epochs, initial_epoch=run.initial_epoch,
              steps_per_epoch=steps,
              validation_data=run.test_ds if t.validate_each_epoch else None,
              # The stream is shuffled by seed already (resumable order).
              shuffle=False, callbacks=callbacks, verbose=t.verbose)
  run.fit_s = time.time() - t_fit


def finalize(run: Run) -> None:
  """Evaluates on the test split, fills ``run.metrics`` and saves the final
  models: model.keras (stripped; on Keras 3 the masks stay inside as
  constraints) and, on tf_keras, the wrapped model_wrapped.keras."""
  fw = run.framework
  ev = run.wrapped.evaluate(run.test_ds, verbose=0, return_dict=True)
  run.stripped = fw.strip(run.wrapped)
  m = final_metrics(run, ev, [x.variable for x in fw.targets(run.wrapped)])
  if fw.name != "tf_keras":  # (tf_keras results stay as they always were)
    m["framework"] = fw.name
  if "model_wrapped.keras" in fw.final_models:
    run.wrapped.save(str(run.wd / "model_wrapped.keras"))
  run.stripped.save(str(run.wd / "model.keras"))
  run.metrics.update(m)


def final_metrics(run: Run, ev, kernels) -> Dict[str, Any]:
  """The run's metrics from ``evaluate``'s dict (accuracy, xent, loss), the
  trained ``kernels`` (measured weight sparsity) and the workdir (per-epoch
  rows, at-init diagnostics); framework-free."""
  t = run.cfg.train
  m = dict(
      test_accuracy=float(ev["accuracy"]), test_loss=float(ev["xent"]),
      test_objective=float(ev["loss"]),
      sparsity=float(1 - run.masks.density()),
      weight_sparsity=pruning.zero_fraction(kernels),
      epochs_done=int(t.epochs), resumed_from_epoch=run.initial_epoch,
      num_replicas=int(run.strategy.num_replicas_in_sync),
      global_batch=run.batch, fit_time_s=run.fit_s)
  rows = run.wd.metrics()
  if rows:
    m["train_accuracy"] = rows[-1].get("accuracy")
  m.update(best_epoch_accuracy(rows))
  diag_path = run.wd / "prune_diagnostics.json"
  if diag_path.exists():
    try:
      m["at_init"] = wd_lib.read_json(
          diag_path, "delete it; it is rewritten when the run is pruned "
          "again (--overwrite).")
    except wd_lib.WorkdirError as e:  # a by-product: never lose the run
      log.say(f"at-init diagnostics skipped: {e}")
  return m


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


def export(run: Run) -> None:
  """Writes model.tflite (sparse, outputs verified) when
  ``config.export_tflite``; a converter gap is reported, never fatal."""
  if not run.cfg.export_tflite:
    return
  path = run.wd / "model.tflite"
  try:
    rep = run.framework.to_tflite(run.stripped, str(path))
    run.metrics.update(tflite=str(path), tflite_bytes=int(rep["bytes"]),
                       tflite_verified=bool(rep["verified"]),
                       tflite_max_abs_diff=float(rep["max_abs_diff"]))
  except Exception as e:  # pylint: disable=broad-except
    # Export is a by-product; a converter gap must not lose a trained run.
    log.say(f"tflite export skipped: {type(e).__name__}: {e}")
    run.metrics["tflite"] = None


def record(run: Run) -> Dict[str, Any]:
  """Writes results.json, then the finished state; returns the metrics."""
  t = run.cfg.train
  run.metrics["wall_time_s"] = time.time() - run.t_start
  wd_lib.write_json(run.wd / "results.json", run.metrics)
  run.wd.set_state(wd_lib.FINISHED, t.epochs, epochs=t.epochs)
  log.say(f"done: test accuracy {run.metrics['test_accuracy']:.4f}, "
          f"sparsity {run.metrics['sparsity']:.4f}, "
          f"{run.metrics['wall_time_s']:.1f} s -> {run.wd.path}")
  return run.metrics
