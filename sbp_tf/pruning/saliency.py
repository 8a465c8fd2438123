"""Compiled gradients and Hessian-gradient products of the loss over data.

The loss of one batch is the mean over the *global* batch,
``L_b = sum_i l(f(x_i) / T, y_i) / B_global``: every replica of a
``tf.distribute`` strategy sums its per-example losses and divides by the
all-reduced batch size, so summing replica gradients gives the single-device
gradient of the same batch. Over ``num_batches`` batches the gradients are
summed: ``g = sum_b dL_b/dW``.
"""

import json
from typing import Callable, Iterator, List, Sequence, Tuple

import numpy as np

from sbp_tf.compat import keras, tf

_SUM = tf.distribute.ReduceOp.SUM


def default_loss():
  """``SparseCategoricalCrossentropy(from_logits=True)`` (models output logits)."""
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def per_example(loss) -> Callable:
  """A callable ``(y, logits) -> per-example (or scalar mean) losses``."""
  if loss is None:
    loss = default_loss()
  if isinstance(loss, str):
    loss = keras.losses.get(loss)
  if isinstance(loss, keras.losses.Loss):
    cfg = dict(loss.get_config())
    cfg["reduction"] = keras.losses.Reduction.NONE
    return type(loss).from_config(cfg)
  if callable(loss):
    return loss
  raise TypeError(f"loss must be a keras Loss, a loss name or a callable, got "
                  f"{type(loss).__name__}. Fix: pass e.g. "
                  "keras.losses.SparseCategoricalCrossentropy(from_logits=True).")


def _checked_pair(data) -> Tuple:
  """``(x, y)`` of a tuple ``data`` after checking labels and examples."""
  if len(data) < 2 or data[1] is None:
    raise ValueError("data must be (x, y) with labels y. Fix: pass "
                     "data=(x, y).")
  x, y = data[0], data[1]
  if int(np.shape(tf.nest.flatten(x)[0])[0]) == 0:
    raise ValueError("data=(x, y) holds no examples. Fix: pass at least "
                     "one example.")
  return x, y


def as_dataset(data) -> tf.data.Dataset:
  """A dataset of ``(x, y)`` batches from a Dataset or an ``(x, y)`` tuple.

  A tuple of arrays is one batch holding all examples.

  Raises:
    ValueError: no data, or elements without labels.
  """
  if data is None:
    raise ValueError("This pruning method is data-driven but data=None. Fix: "
                     "pass data=(x, y) or a tf.data.Dataset of (x, y) batches.")
  if isinstance(data, tf.data.Dataset):
    spec = data.element_spec
    if not isinstance(spec, (tuple, list)) or len(spec) < 2:
      raise ValueError(
          "The dataset yields elements without labels (element_spec "
          f"{spec}). Fix: pass a dataset of (x, y) batches with integer labels.")
    if len(spec) > 2:
      data = data.map(lambda *e: (e[0], e[1]))
    return data
  if isinstance(data, (tuple, list)):
    x, y = _checked_pair(data)
    n = int(np.shape(tf.nest.flatten(x)[0])[0])
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(n)
  raise TypeError(f"data must be a tf.data.Dataset or an (x, y) tuple, got "
                  f"{type(data).__name__}.")


class _PerModelTracing:
  """Drops TensorFlow's "triggered tf.function retracing" warning for the
  functions sbp_tf traces once per model (saliency steps, SynFlow's R).

  Each model gets its own traced function by design (its variables are
  captured), so pruning models in a loop traces once per model; TensorFlow
  counts traces per code object across all of them and advises moving the
  function out of the loop, which does not apply. Other functions' warnings
  pass.
  """
  NAMES = ("Saliency._compiled.<locals>.step",
           "_float64_runner.<locals>.grad", "_float32_runner.<locals>.g")

  def filter(self, record) -> bool:
    msg = record.getMessage()
    return not ("triggered tf.function retracing" in msg
                and any(n in msg for n in self.NAMES))


tf.get_logger().addFilter(_PerModelTracing())


class Saliency:
  """Gradients / Hessian-gradient products of the loss w.r.t. variables.

  Args:
    model: the Keras model (outputs logits).
    variables: the variables to differentiate.
    loss: see :func:`per_example`.
    strategy: a ``tf.distribute.Strategy`` the model was built under, or None.
    training: forward pass mode (True: batch statistics in BN).
  """

  def __init__(self, model, variables: Sequence, loss=None, strategy=None,
               training: bool = True):
    self.model = model
    self.variables = list(variables)
    self.loss_fn = per_example(loss)
    self.distributed = strategy is not None
    self.strategy = strategy or tf.distribute.get_strategy()
    self.training = training
    self._fns = {}

  def _batch_loss(self, x, y, temperature):
    logits = self.model(x, training=self.training)
    logits = tf.cast(logits, tf.float32) / temperature
    per = tf.convert_to_tensor(self.loss_fn(y, logits))
    n_local = tf.cast(tf.shape(tf.nest.flatten(y)[0])[0], tf.float32)
    ctx = tf.distribute.get_replica_context()
    n_global = ctx.all_reduce(_SUM, n_local) if ctx is not None else n_local
    if per.shape.rank == 0:  # a mean-reducing callable: undo its local mean
      return per * n_local / n_global
    if per.shape.rank > 1:
      per = tf.reduce_mean(per, axis=list(range(1, per.shape.rank)))
    return tf.reduce_sum(per) / n_global

  def _zeros_for_none(self, grads):
    return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, self.variables)]

  def _grad_replica(self, x, y, temperature):
    with tf.GradientTape() as tape:
      loss = self._batch_loss(x, y, temperature)
    return self._zeros_for_none(tape.gradient(loss, self.variables))

  def _hg_replica(self, x, y, g, temperature):
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        loss = self._batch_loss(x, y, temperature)
      grads = self._zeros_for_none(inner.gradient(loss, self.variables))
      # z = g^T grad L with g held constant, so dz/dW = H g.
      z = tf.add_n([tf.reduce_sum(a * tf.stop_gradient(b))
                    for a, b in zip(grads, g)])
    return self._zeros_for_none(outer.gradient(z, self.variables))

  def _g_and_hg_replica(self, x, y, temperature):
    # One batch on one device: g is this batch's own gradient, so one forward
    # and one double backward give both (saves a full gradient pass).
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        loss = self._batch_loss(x, y, temperature)
      grads = self._zeros_for_none(inner.gradient(loss, self.variables))
      z = tf.add_n([tf.reduce_sum(a * tf.stop_gradient(a)) for a in grads])
    return grads + self._zeros_for_none(outer.gradient(z, self.variables))

  def _compiled(self, name, replica_fn):
    if name not in self._fns:
      strategy = self.strategy

      @tf.function
      def step(*args):
        out = strategy.run(replica_fn, args=args)
        return [strategy.reduce(_SUM, o, axis=None) for o in out]
      self._fns[name] = step
    return self._fns[name]

  def _batches(self, data, num_batches) -> Iterator[Tuple]:
    if isinstance(data, (tuple, list)) and not self.distributed:
      # One in-memory batch: hand it over as tensors. Slicing it into a
      # Dataset and batching it again cost 2.4 s for 16 ImageNet images.
      x, y = _checked_pair(data)
      yield tf.nest.map_structure(tf.convert_to_tensor, (x, y))
      return
    ds = as_dataset(data).take(num_batches)
    if self.distributed:  # split each global batch over the replicas
      ds = self.strategy.experimental_distribute_dataset(ds)
    count = 0
    for x, y in ds:
      count += 1
      yield x, y
    if count == 0:
      raise ValueError("The dataset is empty: no batch to score on. Fix: pass "
                       "a dataset with at least one (x, y) batch.")

  def gradients(self, data, num_batches: int = 1,
                temperature: float = 1.0) -> List[np.ndarray]:
    """``g = sum_b dL_b/dW`` over the first ``num_batches`` batches (float64)."""
    step = self._compiled("grad", self._grad_replica)
    t = tf.constant(float(temperature), tf.float32)
    acc = None
    for x, y in self._batches(data, num_batches):
      out = [o.numpy().astype(np.float64) for o in step(x, y, t)]
      acc = out if acc is None else [a + o for a, o in zip(acc, out)]
    return acc

  def hessian_gradient(self, data, g: Sequence[np.ndarray],
                       num_batches: int = 1,
                       temperature: float = 1.0) -> List[np.ndarray]:
    """``H g = sum_b d(g^T dL_b/dW)/dW`` with ``g`` held constant (float64)."""
    step = self._compiled("hg", self._hg_replica)
    t = tf.constant(float(temperature), tf.float32)
    gt = [tf.constant(a, dtype=v.dtype) for a, v in zip(g, self.variables)]
    acc = None
    for x, y in self._batches(data, num_batches):
      out = [o.numpy().astype(np.float64) for o in step(x, y, gt, t)]
      acc = out if acc is None else [a + o for a, o in zip(acc, out)]
    return acc

  def gradient_and_hessian_gradient(self, data, num_batches: int = 1,
                                    temperature: float = 1.0):
    """``(g, H g)`` as :meth:`gradients` then :meth:`hessian_gradient`.

    With one batch on one device both come from one compiled pass
    (``z = g^T stop_gradient(g)``, ``dz/dW = H g``); otherwise ``g`` is summed
    over all batches (and replicas) first, as ``H g`` needs the full ``g``.
    """
    if num_batches == 1 and not self.distributed:
      step = self._compiled("g_hg", self._g_and_hg_replica)
      t = tf.constant(float(temperature), tf.float32)
      for x, y in self._batches(data, 1):
        out = [o.numpy().astype(np.float64) for o in step(x, y, t)]
        n = len(self.variables)
        return out[:n], out[n:]
    g = self.gradients(data, num_batches, temperature)
    return g, self.hessian_gradient(data, g, num_batches, temperature)


# Reusing a model's Saliency reuses its traced functions, so pruning the same
# model again (iterative rounds, another sparsity) pays TensorFlow's tracing
# once instead of on every call. The cache lives on the model (set with
# object.__setattr__ so Keras does not track it): it dies with the model.
_CACHE_ATTR = "_sbp_tf_saliency_cache"


def _loss_key(loss):
  """Cache key of a loss: built-in Keras losses by class and config.

  So ``prune(..., loss=SparseCategoricalCrossentropy(from_logits=True))``
  written inline reuses the traced function on the next call instead of
  retracing (1-2 s on ResNet-32). Any other loss (a user's class, whose
  config may not hold all its state, or a function) is keyed by identity.
  """
  if loss is None or isinstance(loss, str):
    return loss
  if type(loss).__module__.startswith("tf_keras.") and hasattr(
      loss, "get_config"):
    try:
      return (type(loss), json.dumps(loss.get_config(), sort_keys=True))
    except (TypeError, ValueError):  # config not JSON-able: fall back
      pass
  return id(loss)


def for_model(model, variables: Sequence, loss=None, strategy=None,
              training: bool = True) -> Saliency:
  """A :class:`Saliency`, cached per model, variables, loss and strategy.

  The strategy is part of the key by identity (``None`` = no strategy), the
  loss by :func:`_loss_key` (``None`` = the default loss).
  """
  key = (tuple(id(v) for v in variables), _loss_key(loss), id(strategy),
         bool(training))
  cache = model.__dict__.get(_CACHE_ATTR)
  if cache is None:
    cache = {}
    object.__setattr__(model, _CACHE_ATTR, cache)
  entry = cache.get(key)
  if entry is None:
    # The entry holds the loss and strategy so their ids stay unique.
    entry = (Saliency(model, variables, loss=loss, strategy=strategy,
                      training=training), loss, strategy)
    cache[key] = entry
  return entry[0]
