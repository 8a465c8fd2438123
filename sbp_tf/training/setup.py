"""What an experiment trains with: its model, optimizer, weight decay, data.

Each function reads the resolved config only; none touches the workdir.

Usage::

    model = build_model(cfg, sbp_tf.data.info(cfg.dataset.name))
    opt = make_optimizer(cfg)
    ds, steps = train_stream(cfg, batch=128, initial_epoch=0)
"""

from typing import Any, Dict

from sbp_tf import data as sbp_data
from sbp_tf import models
from sbp_tf import pruning
from sbp_tf.compat import keras, tf


def model_options(config) -> Dict[str, Any]:
  """``config.model.options`` without the unset (None) entries."""
  return {k: v for k, v in config.model.options.items() if v is not None}


def method_options(config) -> Dict[str, Any]:
  """``config.prune.options`` without the unset (None) entries: the pruning
  method's own parameters (``prune(..., **method_options)``)."""
  return {k: v for k, v in config.prune.options.items() if v is not None}


def build_model(config, info):
  """Builds ``config.model`` for ``info`` (float32 logits under mixed precision).

  Logits ``z = f(x; W)`` come from ``sbp_tf.models.build``; under a mixed
  policy they are cast to float32 before the loss.
  """
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


def make_optimizer(config, optimizers=None):
  """SGD (momentum, optional Nesterov) or Adam; decoupled decay if configured.

  With ``weight_decay_mode='decoupled'`` the update adds ``-lr * wd * W``
  (tf_keras' optimizer ``weight_decay``); ``'l2'`` adds ``wd/2 * ||W||^2`` to
  the loss instead (see :func:`add_l2`). ``optimizers``: the module whose
  ``SGD``/``Adam`` are built (default tf_keras'; Keras 3's
  ``keras.optimizers`` has the same arguments and decay rule).
  """
  t = config.train
  optimizers = optimizers or keras.optimizers
  wd = t.weight_decay if t.weight_decay_mode == "decoupled" else None
  if t.optimizer == "sgd":
    opt = optimizers.SGD(t.lr, momentum=t.momentum, nesterov=t.nesterov,
                         weight_decay=wd)
  else:
    opt = optimizers.Adam(t.lr, weight_decay=wd)
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
  kernels = [t.variable for t in pruning.prunable_targets(model)]
  model.add_loss(lambda: 0.5 * weight_decay * tf.add_n(
      [tf.reduce_sum(tf.square(tf.cast(k, tf.float32))) for k in kernels]))


def global_batch(config, strategy) -> int:
  """The global batch: ``train.batch_size``, times the replicas if
  ``per_replica_batch_scaling``."""
  t = config.train
  return t.batch_size * (strategy.num_replicas_in_sync
                         if t.per_replica_batch_scaling else 1)


def load(config, split, batch_size, *, shuffle, augment, limit,
         start_step=None):
  """``(dataset, info)`` of ``split`` of ``config.dataset``."""
  d = config.dataset
  return sbp_data.load(d.name, split, batch_size=batch_size,
                       data_dir=d.data_dir, shuffle=shuffle, augment=augment,
                       seed=config.seed, limit=limit, cache_dir=d.cache_dir,
                       start_step=start_step)


def train_stream(config, batch, initial_epoch):
  """(endless train batches from epoch ``initial_epoch`` on, steps per epoch).

  Pass d over the data is shuffled and augmented by seeds that depend only on
  (config.seed, d), and Keras epoch e consumes batches [e*S, (e+1)*S) of the
  stream (S = train.steps_per_epoch, or one pass), so a run resumed after
  any epoch trains on exactly the batches of the uninterrupted run.
  """
  t, d = config.train, config.dataset
  ds, info = load(config, "train", batch, shuffle=True, augment=d.augment,
                  limit=d.limit_train, start_step=0)
  size = info.size or min(d.limit_train or info.num_examples["train"],
                          info.num_examples["train"])
  steps = t.steps_per_epoch or sbp_data.batches_per_epoch(size, batch)
  if initial_epoch:  # the pass length is known now: position the stream
    ds, _ = load(config, "train", batch, shuffle=True, augment=d.augment,
                 limit=d.limit_train, start_step=initial_epoch * steps)
  return ds, steps
