"""What one Keras gives the experiment's phases: the hooks that differ.

The phases (:mod:`sbp_tf.training.phases`) are written once against a
:class:`Framework`; ``config.framework`` picks one (:func:`of`):

* ``tf_keras`` (default): the tf_keras zoo, ``sbp_tf.pruning.prune`` under
  the run's strategy, masks kept by tfmot's wrappers (``sbp_tf.tfmot.wrap``,
  its ``UpdatePruningStep``), stripped after training; saves
  ``model_wrapped.keras`` and ``model.keras``.
* ``keras3``: the Keras 3 zoo, ``sbp_tf.keras3.prune``, masks kept as kernel
  constraints (``keras3.mask``: the trained model is the final one, masks
  inside); saves ``model.keras``; one device, float32.

Everything else (workdir, checkpoints and their resume, the resumable train
stream, the callbacks' bodies, metrics, reports, export) is the same code
for both. The Keras 3 framework is built on first use, so a tf_keras run
never imports Keras 3.

Usage::

    fw = frameworks.of(cfg)
    trained = fw.keep_masks(model, masks)
"""

import dataclasses
import functools
from typing import Any, Callable, Optional, Tuple

from sbp_tf import pruning
from sbp_tf.compat import keras
from sbp_tf.training import setup


@dataclasses.dataclass(frozen=True)
class Framework:
  """One Keras' hooks for the phases.

  Attributes:
    name: ``config.framework`` (``"tf_keras"`` or ``"keras3"``).
    keras: the Keras module (optimizers, losses, metrics, callbacks).
    kit: the pruning engine's :class:`sbp_tf.pruning.kit.Kit` (targets,
      mask validation).
    build_model: ``(cfg, info) -> model``, seeded with ``cfg.seed``.
    prune: ``pruning.prune``-like ``(model, method, sparsity, data=, **kw)``.
    prune_kw: ``run -> dict`` of extra ``prune`` arguments.
    keep_masks: ``(model, masks) -> the model that trains`` holding them.
    held_masks: ``trained -> {key: mask}`` the checkpoint restores with the
      model (tfmot's mask variables), or None.
    step_callbacks: ``() -> [callback]`` that keeping masks needs in fit.
    add_l2: ``(trained, weight_decay)``: ``wd/2 * sum ||W||^2`` on kernels.
    strip: ``trained -> final model`` (without mask machinery).
    final_models: the model files a finished run holds.
    to_tflite: ``(final, path) -> report`` of the verified sparse export.
    max_replicas: the most replicas it trains on (None: any strategy).
  """
  name: str
  keras: Any
  kit: Any
  build_model: Callable
  prune: Callable
  prune_kw: Callable
  keep_masks: Callable
  held_masks: Callable
  step_callbacks: Callable
  add_l2: Callable
  strip: Callable
  final_models: Tuple[str, ...]
  to_tflite: Callable
  max_replicas: Optional[int] = None

  def targets(self, model) -> list:
    """The prunable targets (key, layer, variable) of ``model``."""
    return self.kit.prunable_targets(model)

  def check_strategy(self, strategy) -> None:
    """Raises ValueError, before anything is written, for a strategy with
    more replicas than this framework trains on."""
    n = int(strategy.num_replicas_in_sync)
    if self.max_replicas is not None and n > self.max_replicas:
      raise ValueError(
          f"framework={self.name!r} trains on one device, but the strategy is "
          f"{type(strategy).__name__} with {n} replica(s). Fix: pass "
          "--strategy=default (no strategy), or use framework='tf_keras' for "
          "distributed training.")


def _tf_keras_model(cfg, info):
  keras.utils.set_random_seed(cfg.seed)
  return setup.build_model(cfg, info)


def _tf_keras_prune(model, method, sparsity, **kw):
  # Looked up at call time, not bound once into the cached Framework.
  return pruning.prune(model, method, sparsity, **kw)


def _tf_keras_export(final, path):
  from sbp_tf import export  # pylint: disable=import-outside-toplevel
  return export.export_for_run(final, path)


@functools.lru_cache(maxsize=None)
def tf_keras() -> Framework:
  """The tf_keras (tfmot) framework."""
  from sbp_tf import tfmot  # pylint: disable=import-outside-toplevel
  from sbp_tf.pruning import kit  # pylint: disable=import-outside-toplevel
  return Framework(
      name="tf_keras", keras=keras, kit=kit.tf_keras(),
      build_model=_tf_keras_model, prune=_tf_keras_prune,
      prune_kw=lambda run: dict(loss=pruning.default_loss(),
                                strategy=run.strategy),
      keep_masks=tfmot.wrap, held_masks=tfmot.masks_of,
      step_callbacks=lambda: list(tfmot.callbacks()), add_l2=setup.add_l2,
      strip=tfmot.strip, final_models=("model_wrapped.keras", "model.keras"),
      to_tflite=_tf_keras_export)


def _keras3_add_l2(model, weight_decay: float) -> None:
  """``weight_decay / 2 * sum_k ||W_k||^2`` over the prunable kernels as
  Keras 3 variable regularizers (gradient ``weight_decay * W``, the same
  term as :func:`setup.add_l2`)."""
  import keras as keras3_module  # pylint: disable=import-outside-toplevel
  from sbp_tf import keras3  # pylint: disable=import-outside-toplevel
  if not weight_decay:
    return
  for t in keras3.prunable_targets(model):
    t.variable.regularizer = keras3_module.regularizers.L2(0.5 * weight_decay)


@functools.lru_cache(maxsize=None)
def keras3() -> Framework:
  """The Keras 3 framework (imports Keras 3 on first use)."""
  # pylint: disable=import-outside-toplevel
  import keras as keras3_module
  from sbp_tf import keras3 as k3
  from sbp_tf.keras3.kit import KERAS3

  def build_model(cfg, info):
    keras3_module.utils.set_random_seed(cfg.seed)
    opts = setup.model_options(cfg)
    if "seed" in k3.models.options(cfg.model.name):
      opts.setdefault("seed", cfg.seed)
    return k3.models.build(cfg.model.name, info.num_classes,
                           tuple(info.input_shape), **opts)

  def prune(model, method, sparsity, **kw):
    return k3.prune(model, method, sparsity, **kw)

  def keep_masks(model, masks):
    k3.mask(model, masks)
    return model  # the constraints live in the model: it trains as it is

  def to_tflite(final, path):
    # compare_dense/time_runs off: the run reports the file, not a benchmark.
    return k3.export.to_tflite(final, path, compare_dense=False, time_runs=0)

  return Framework(
      name="keras3", keras=keras3_module, kit=KERAS3,
      build_model=build_model, prune=prune, prune_kw=lambda run: {},
      keep_masks=keep_masks, held_masks=lambda trained: None,
      step_callbacks=list, add_l2=_keras3_add_l2, strip=lambda t: t,
      final_models=("model.keras",), to_tflite=to_tflite, max_replicas=1)


def of(cfg) -> Framework:
  """The framework ``cfg.framework`` names (``tf_keras`` when unset)."""
  return keras3() if cfg.get("framework", "tf_keras") == "keras3" else tf_keras()

