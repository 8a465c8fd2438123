"""Compiled gradients and Hessian-gradient products of the loss over data.

The saliency loss of one batch is a weighted sum over the model's outputs
``o`` of per-output means over the *global* batch::

    L_b = sum_o w_o * sum_i l_o(f_o(x_i) / T, y_o,i) / B_global

(one output with the default loss: ``w = 1``, ``l`` = sparse softmax
cross-entropy on logits). Every replica of a ``tf.distribute`` strategy sums
its per-example losses and divides by the all-reduced batch size, so summing
replica gradients gives the single-device gradient of the same batch. Over
``num_batches`` batches the gradients are summed: ``g = sum_b dL_b/dW``.

Which ``l_o``, ``w_o`` and ``from_logits`` apply is decided once per model
and loss by :func:`resolve_loss` (a :class:`LossPlan`): a final softmax is
detected, so the default loss reads probabilities there, and a user's loss
that contradicts the model's head is warned about.
"""

import functools
import json
import numbers
import warnings
from typing import Callable, Iterator, List, Mapping, Sequence, Tuple

import numpy as np

from sbp_tf import compat, log
from sbp_tf.compat import tf
from sbp_tf.pruning import losses, precision
# The loss resolution lives in losses.py; these names stay importable here.
from sbp_tf.pruning.losses import (  # noqa: F401
    LossPlan, OutputLoss, default_loss, model_outputs, output_activation,
    per_example, resolve_loss)

_SUM = tf.distribute.ReduceOp.SUM
def _tuples(struct):
  """Lists in ``struct`` as tuples: tf.data reads a list as one tensor (and
  fails on arrays of different shapes), ``fit`` reads it as a structure."""
  if isinstance(struct, list):
    if all(isinstance(s, numbers.Number) for s in struct):
      return struct  # a list of labels is one array
    return tuple(_tuples(s) for s in struct)
  if isinstance(struct, tuple) and not hasattr(struct, "_fields"):
    return tuple(_tuples(s) for s in struct)
  if isinstance(struct, Mapping):
    return {k: _tuples(v) for k, v in struct.items()}
  return struct


def _num_examples(x) -> int:
  leaves = [a for a in tf.nest.flatten(x) if a is not None]
  if not leaves:
    raise ValueError("data=(x, y) has no input arrays. Fix: pass x as an "
                     "array, a tuple or a dict of arrays.")
  return int(np.shape(leaves[0])[0])


def _checked_pair(data) -> Tuple:
  """``(x, y)`` of a tuple ``data`` after checking labels and examples."""
  if len(data) < 2 or data[1] is None:
    raise ValueError("data must be (x, y) with labels y. Fix: pass "
                     "data=(x, y).")
  x, y = data[0], data[1]
  if _num_examples(x) == 0:
    raise ValueError("data=(x, y) holds no examples. Fix: pass at least "
                     "one example.")
  return x, y


def check_data(data) -> None:
  """Raises as :func:`as_dataset` does, without building a dataset.

  Raises:
    ValueError: no data, elements without labels, no examples.
    TypeError: neither a Dataset nor an ``(x, y)`` tuple.
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
    return
  if isinstance(data, (tuple, list)):
    _checked_pair(data)
    return
  raise TypeError(f"data must be a tf.data.Dataset or an (x, y) tuple, got "
                  f"{type(data).__name__}.")


def as_dataset(data) -> tf.data.Dataset:
  """A dataset of ``(x, y)`` batches from a Dataset or an ``(x, y)`` tuple.

  A tuple of arrays is one batch holding all examples; ``x`` and ``y`` may
  be nested (tuples, lists, dicts), as ``fit`` takes them.

  Raises:
    ValueError: no data, or elements without labels.
  """
  check_data(data)
  if isinstance(data, tf.data.Dataset):
    if len(data.element_spec) > 2:  # (x, y, sample_weight): weights unused
      data = data.map(lambda *e: (e[0], e[1]))
    return data
  x, y = _checked_pair(data)
  return tf.data.Dataset.from_tensor_slices(_tuples((x, y))).batch(
      _num_examples(x))


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


def _global_mean(per, n_local, n_global):
  """``sum_i l_i / B_global`` of per-example losses (or of their local mean)."""
  per = tf.convert_to_tensor(per)
  if per.shape.rank == 0:  # a mean-reducing callable: undo its local mean
    return per * n_local / n_global
  if per.shape.rank > 1:
    per = tf.reduce_mean(per, axis=list(range(1, per.shape.rank)))
  return tf.reduce_sum(per) / n_global


def _logits_of(p):
  """Logits ``z`` (up to a constant) of softmax probabilities ``p``: the
  Softmax op's input where the graph has it, else ``log p``."""
  op = getattr(p, "op", None)
  if op is not None and op.type == "Softmax":
    return tf.cast(op.inputs[0], tf.float32)
  return tf.math.log(tf.maximum(p, np.finfo(np.float32).tiny))


class Saliency:
  """Gradients / Hessian-gradient products of the loss w.r.t. variables.

  Args:
    model: the Keras model (outputs logits, or a softmax it detects).
    variables: the variables to differentiate.
    loss: see :func:`resolve_loss` (default: sparse CE on one output).
    strategy: a ``tf.distribute.Strategy`` the model was built under, or None.
    training: forward pass mode (True: batch statistics in BN).
    loss_weights: ``w_o`` per output (dict by name or list), default 1.

  The temperature ``T`` divides every output, except a softmax read as
  probabilities, which becomes ``softmax(z / T)`` of its logits ``z`` (so
  GraSP's temperature acts on a softmax head too; ``T = 1`` leaves it as is).

  A model computing in float16/bfloat16 (a mixed-precision policy) is
  differentiated on a float32 copy holding its current weights
  (:mod:`precision`): half-precision gradients underflow (GraSP's ``H g``
  to exactly 0). A model that cannot be copied (subclassed) is
  differentiated as it is, with a warning.
  """

  def __init__(self, model, variables: Sequence, loss=None, strategy=None,
               training: bool = True, loss_weights=None):
    self.model = model
    self.variables = list(variables)
    self.plan = resolve_loss(model, loss, loss_weights)
    self.distributed = strategy is not None
    self.strategy = strategy or tf.distribute.get_strategy()
    self.training = training
    self._fns = {}
    self._copy = precision.float32_copy(model, compat.keras_of(model),
                                        self.strategy, "saliency")
    if self._copy is not None:  # differentiate the float32 copy's weights
      self.model = self._copy.model
      self.variables = [self._copy.mapped[id(v)] for v in self.variables]
    plain = (self.plan.structured is None and len(self.plan.outputs) == 1
             and loss is None and self.plan.outputs[0].from_logits)
    if not plain:  # the common default stays quiet
      log.logger.info("saliency loss of %s: %s", model.name,
                      self.plan.description)
    for note in self.plan.notes:
      warnings.warn(note)

  @property
  def loss_fn(self) -> Callable:
    """The per-example loss of a single-output model (or the callable)."""
    if self.plan.structured is not None:
      return self.plan.structured
    return self.plan.outputs[0].fn

  def _output(self, o, pred, temperature, tempered):
    pred = tf.cast(pred, tf.float32)
    if o.probabilities:
      # Dividing probabilities by T would only shift -log p by log T; the
      # untouched Softmax op also lets Keras's cross-entropy use its logits.
      return tf.nn.softmax(_logits_of(pred) / temperature) if tempered else pred
    return pred / temperature

  def _batch_loss(self, x, y, temperature, tempered=False):
    preds = self.model(x, training=self.training)
    first = [a for a in tf.nest.flatten(y) if a is not None] or tf.nest.flatten(x)
    n_local = tf.cast(tf.shape(first[0])[0], tf.float32)
    ctx = tf.distribute.get_replica_context()
    n_global = ctx.all_reduce(_SUM, n_local) if ctx is not None else n_local
    plan = self.plan
    if plan.structured is not None:
      scaled = tf.nest.map_structure(
          lambda p: tf.cast(p, tf.float32) / temperature, preds)
      return _global_mean(plan.structured(y, scaled), n_local, n_global)
    total = None
    for o, p, t in zip(plan.outputs, plan.flat_outputs(preds),
                       plan.flat_targets(y)):
      if o.fn is None:
        continue
      part = _global_mean(o.fn(t, self._output(o, p, temperature, tempered)),
                          n_local, n_global)
      if o.weight != 1.0:
        part = part * o.weight
      total = part if total is None else total + part
    return total

  def _sync(self):
    """The float32 copy (if any) takes the model's current weights (the
    rounds of prune() zero pruned ones in the model)."""
    if self._copy is not None:
      self._copy.sync()

  def _zeros_for_none(self, grads):
    return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, self.variables)]

  def _grad_replica(self, x, y, temperature, tempered=False):
    with tf.GradientTape() as tape:
      loss = self._batch_loss(x, y, temperature, tempered)
    return self._zeros_for_none(tape.gradient(loss, self.variables))

  def _hg_replica(self, x, y, g, temperature, tempered=False):
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        loss = self._batch_loss(x, y, temperature, tempered)
      grads = self._zeros_for_none(inner.gradient(loss, self.variables))
      # z = g^T grad L with g held constant, so dz/dW = H g.
      z = tf.add_n([tf.reduce_sum(a * tf.stop_gradient(b))
                    for a, b in zip(grads, g)])
    return self._zeros_for_none(outer.gradient(z, self.variables))

  def _g_and_hg_replica(self, x, y, temperature, tempered=False):
    # One batch on one device: g is this batch's own gradient, so one forward
    # and one double backward give both (saves a full gradient pass).
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        loss = self._batch_loss(x, y, temperature, tempered)
      grads = self._zeros_for_none(inner.gradient(loss, self.variables))
      z = tf.add_n([tf.reduce_sum(a * tf.stop_gradient(a)) for a in grads])
    return grads + self._zeros_for_none(outer.gradient(z, self.variables))

  def _compiled(self, name, replica_fn, temperature=1.0,
                second_order=False):
    # A softmax read as probabilities is tempered in the graph only when
    # T != 1 (a second trace), so T = 1 keeps Keras's logits shortcut.
    tempered = self.plan.probabilities and float(temperature) != 1.0
    key = name + ("@T" if tempered else "")
    if key not in self._fns:
      strategy, model = self.strategy, self.model
      fn = functools.partial(replica_fn, tempered=tempered)
      # Second-order graphs are traced with exact (unfused) normalization;
      # first-order ones with the fused kernel on both Kerases (speed).
      context = functools.partial(
          compat.unfused_normalization if second_order
          else compat.fused_normalization, model)

      @tf.function
      def step(*args):
        with context():
          out = strategy.run(fn, args=args)
        return [strategy.reduce(_SUM, o, axis=None) for o in out]
      self._fns[key] = step
    return self._fns[key]

  def _batches(self, data, num_batches) -> Iterator[Tuple]:
    if isinstance(data, (tuple, list)) and not self.distributed:
      # One in-memory batch: hand it over as tensors. Slicing it into a
      # Dataset and batching it again costs seconds on ImageNet-sized images.
      x, y = _checked_pair(data)
      yield tf.nest.map_structure(tf.convert_to_tensor, _tuples((x, y)))
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
    self._sync()
    step = self._compiled("grad", self._grad_replica, temperature)
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
    self._sync()
    step = self._compiled("hg", self._hg_replica, temperature,
                          second_order=True)
    t = tf.constant(float(temperature), tf.float32)
    gt = [tf.constant(a, dtype=v.dtype) for a, v in zip(g, self.variables)]
    acc = None
    for x, y in self._batches(data, num_batches):
      out = [o.numpy().astype(np.float64) for o in step(x, y, gt, t)]
      acc = out if acc is None else [a + o for a, o in zip(acc, out)]
    return acc

  def hessian_vector_products(self, data, vectors: Sequence[Sequence],
                              num_batches: int = 1,
                              temperature: float = 1.0
                              ) -> List[List[np.ndarray]]:
    """``[H v for v in vectors]`` (float64), ``H = sum_b d^2 L_b / dW^2``.

    Each ``v`` is one array per variable (``self.variables`` order). The
    products run on the compiled ``H g`` step of :meth:`hessian_gradient`
    with ``v`` in place of ``g`` (so loss plans, strategies and the float32
    copy apply); the batches are read once, each one for every ``v``.
    """
    self._sync()
    step = self._compiled("hg", self._hg_replica, temperature)
    t = tf.constant(float(temperature), tf.float32)
    vs = [[tf.constant(a, dtype=var.dtype) for a, var in zip(v, self.variables)]
          for v in vectors]
    acc = [None] * len(vs)
    for x, y in self._batches(data, num_batches):
      for i, v in enumerate(vs):
        out = [o.numpy().astype(np.float64) for o in step(x, y, v, t)]
        acc[i] = out if acc[i] is None else [a + o for a, o in zip(acc[i], out)]
    return acc

  def gradient_and_hessian_gradient(self, data, num_batches: int = 1,
                                    temperature: float = 1.0):
    """``(g, H g)`` as :meth:`gradients` then :meth:`hessian_gradient`.

    With one batch on one device both come from one compiled pass
    (``z = g^T stop_gradient(g)``, ``dz/dW = H g``); otherwise ``g`` is summed
    over all batches (and replicas) first, as ``H g`` needs the full ``g``.
    """
    if num_batches == 1 and not self.distributed:
      self._sync()
      step = self._compiled("g_hg", self._g_and_hg_replica, temperature,
                            second_order=True)
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
  if isinstance(loss, Mapping):  # per output: by name
    return ("dict",) + tuple(sorted((str(k), _loss_key(v))
                                    for k, v in loss.items()))
  if isinstance(loss, (list, tuple)):
    return ("list",) + tuple(_loss_key(v) for v in loss)
  if type(loss).__module__.startswith(("tf_keras.", "keras.")) and hasattr(
      loss, "get_config"):
    try:
      return (type(loss), json.dumps(loss.get_config(), sort_keys=True))
    except (TypeError, ValueError):  # config not JSON-able: fall back
      pass
  return id(loss)


def _weights_key(loss_weights):
  if isinstance(loss_weights, Mapping):
    return ("dict",) + tuple(sorted((str(k), repr(v))
                                    for k, v in loss_weights.items()))
  if isinstance(loss_weights, (list, tuple)):
    return ("list",) + tuple(repr(v) for v in loss_weights)
  return repr(loss_weights)


def for_model(model, variables: Sequence, loss=None, strategy=None,
              training: bool = True, loss_weights=None) -> Saliency:
  """A :class:`Saliency`, cached per model, variables, loss, loss weights and
  strategy.

  The strategy is part of the key by identity (``None`` = no strategy), the
  loss by :func:`_loss_key` (``None`` = the default loss; dicts and lists
  entry by entry), the weights by value.
  """
  key = (tuple(id(v) for v in variables), _loss_key(loss), id(strategy),
         bool(training), _weights_key(loss_weights))
  cache = model.__dict__.get(_CACHE_ATTR)
  if cache is None:
    cache = {}
    object.__setattr__(model, _CACHE_ATTR, cache)
  entry = cache.get(key)
  if entry is None:
    # The entry holds the loss and strategy so their ids stay unique.
    entry = (Saliency(model, variables, loss=loss, strategy=strategy,
                      training=training, loss_weights=loss_weights), loss,
             strategy)
    cache[key] = entry
  return entry[0]
