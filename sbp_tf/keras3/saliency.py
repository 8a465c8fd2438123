"""Gradients and Hessian-gradient products of a Keras 3 model's loss.

The same quantities as :mod:`sbp_tf.pruning.saliency` (tf_keras), computed
with ``tf.GradientTape`` on a Keras 3 model under the TensorFlow backend:

* one batch: ``L_b = sum_i l(f(x_i) / T, y_i) / B`` (mean over the batch,
  logits divided by the temperature ``T``, forward pass in training mode);
* ``g = sum_b dL_b/dW`` over ``num_batches`` batches;
* ``H g = sum_b d(g^T dL_b/dW)/dW`` with ``g`` held constant (double
  backprop), which GraSP scores.

:class:`ScoreContext` hands these to the methods of
:mod:`sbp_tf.pruning.scores` unchanged, so every registered method (the
built-in ones and a user's ``@pruning.register_method``) scores Keras 3
models through it.

Usage::

    from sbp_tf.keras3 import saliency
    s = saliency.Saliency(model, [t.variable for t in targets])
    g = s.gradients((x, y))               # list of float64 arrays
    g, hg = s.gradient_and_hessian_gradient((x, y), temperature=200.0)
"""

import dataclasses
import weakref
from typing import List, Sequence

import numpy as np

from sbp_tf.keras3._runtime import keras, require_tensorflow
from sbp_tf.pruning import precision
from sbp_tf.pruning import saliency as _k2_saliency
from sbp_tf.pruning import scores as _k2_scores


def default_loss():
  """Keras 3 ``SparseCategoricalCrossentropy(from_logits=True)``."""
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def per_example(loss):
  """A callable ``(y, logits) -> per-example losses`` from a Keras 3 loss.

  Args:
    loss: None (the default loss), a Keras 3 loss name or ``Loss`` (its
      reduction is turned off), or a callable ``(y, logits) -> losses``.

  Raises:
    TypeError: a tf_keras (Keras 2) loss, or not a loss at all.
  """
  if loss is None:
    loss = default_loss()
  if isinstance(loss, str):
    loss = keras.losses.get(loss)
  if isinstance(loss, keras.losses.Loss):
    return type(loss).from_config({**loss.get_config(), "reduction": None})
  if (type(loss).__module__ or "").startswith("tf_keras"):
    raise TypeError("loss is a tf_keras (Keras 2) loss; a Keras 3 model needs "
                    "a Keras 3 one. Fix: pass keras.losses.<Name>(...) from "
                    "`import keras`.")
  if callable(loss):
    return loss
  raise TypeError(f"loss must be a Keras 3 Loss, a loss name or a callable, "
                  f"got {type(loss).__name__}. Fix: pass e.g. keras.losses."
                  "SparseCategoricalCrossentropy(from_logits=True).")


class Saliency:
  """Compiled gradients of the loss of a Keras 3 model (TensorFlow backend).

  A model computing in float16/bfloat16 (mixed precision) is differentiated
  on a float32 copy holding its current weights
  (:mod:`sbp_tf.pruning.precision`).

  Args:
    model: the Keras 3 model (outputs logits).
    variables: the Keras 3 variables to differentiate.
    loss: see :func:`per_example`.
    training: forward mode (True: batch statistics in batch norm).
  """

  def __init__(self, model, variables: Sequence, loss=None,
               training: bool = True):
    require_tensorflow("gradient saliency")
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._tf = tf
    self.model = model
    self.variables = list(variables)
    self.loss_fn = per_example(loss)
    self.training = training
    self._fns = {}
    # Mixed precision: differentiate a float32 copy (as on tf_keras).
    self._copy = precision.float32_copy(model, keras, None, "saliency")
    if self._copy is not None:
      self.model = self._copy.model
      self.variables = [self._copy.mapped[id(v)] for v in self.variables]

  def _sources(self):
    # The tf.Variables behind the Keras 3 variables: what the tape watches.
    return [v.value for v in self.variables]

  def _batch_loss(self, x, y, temperature):
    tf = self._tf
    logits = tf.cast(self.model(x, training=self.training), tf.float32)
    per = tf.convert_to_tensor(self.loss_fn(y, logits / temperature))
    if per.shape.rank == 0:  # a mean-reducing callable
      return per
    if per.shape.rank > 1:
      per = tf.reduce_mean(per, axis=list(range(1, per.shape.rank)))
    n = tf.cast(tf.shape(tf.nest.flatten(y)[0])[0], tf.float32)
    return tf.reduce_sum(per) / n

  def _dense(self, grads):
    return [self._tf.zeros_like(v.value) if g is None
            else self._tf.convert_to_tensor(g)
            for g, v in zip(grads, self.variables)]

  def _grad(self, x, y, temperature):
    with self._tf.GradientTape() as tape:
      loss = self._batch_loss(x, y, temperature)
    return self._dense(tape.gradient(loss, self._sources()))

  def _double_backward(self, x, y, g, temperature):
    """``(grad L, d(g^T grad L)/dW)``; ``g=None`` uses grad L itself."""
    tf = self._tf
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        loss = self._batch_loss(x, y, temperature)
      grads = self._dense(inner.gradient(loss, self._sources()))
      # z = g^T grad L with g held constant, so dz/dW = H g.
      z = tf.add_n([tf.reduce_sum(a * tf.stop_gradient(b)) for a, b in
                    zip(grads, grads if g is None else g)])
    return grads, self._dense(outer.gradient(z, self._sources()))

  def _hg(self, x, y, g, temperature):
    return self._double_backward(x, y, g, temperature)[1]

  def _g_and_hg(self, x, y, temperature):
    # One batch: g is the batch's own gradient, one double backward gives both.
    grads, hg = self._double_backward(x, y, None, temperature)
    return grads + hg

  def _compiled(self, name, fn):
    if name not in self._fns:
      self._fns[name] = self._tf.function(fn)
    return self._fns[name]

  def _batches(self, data, num_batches):
    tf = self._tf
    if isinstance(data, (tuple, list)):
      if len(data) < 2 or data[1] is None:
        raise ValueError("data must be (x, y) with labels y. Fix: pass "
                         "data=(x, y).")
      yield tf.nest.map_structure(tf.convert_to_tensor, (data[0], data[1]))
      return
    count = 0
    for x, y in _k2_saliency.as_dataset(data).take(num_batches):
      count += 1
      yield x, y
    if count == 0:
      raise ValueError("The dataset is empty: no batch to score on. Fix: pass "
                       "a dataset with at least one (x, y) batch.")

  def _accumulate(self, step, data, num_batches, *extra) -> List[np.ndarray]:
    if self._copy is not None:  # the copy takes the model's current weights
      self._copy.sync()
    acc = None
    for x, y in self._batches(data, num_batches):
      out = [o.numpy().astype(np.float64) for o in step(x, y, *extra)]
      acc = out if acc is None else [a + o for a, o in zip(acc, out)]
    return acc

  def gradients(self, data, num_batches: int = 1,
                temperature: float = 1.0) -> List[np.ndarray]:
    """``g = sum_b dL_b/dW`` over the first ``num_batches`` batches, float64."""
    t = self._tf.constant(float(temperature), self._tf.float32)
    return self._accumulate(self._compiled("grad", self._grad), data,
                            num_batches, t)

  def gradient_and_hessian_gradient(self, data, num_batches: int = 1,
                                    temperature: float = 1.0):
    """``(g, H g)``, float64 lists; ``g`` summed over all batches first."""
    tf = self._tf
    t = tf.constant(float(temperature), tf.float32)
    if num_batches == 1 or isinstance(data, (tuple, list)):
      out = self._accumulate(self._compiled("g_hg", self._g_and_hg), data, 1,
                             t)
      n = len(self.variables)
      return out[:n], out[n:]
    g = self.gradients(data, num_batches, temperature)
    gt = [tf.constant(a, dtype=v.value.dtype)
          for a, v in zip(g, self.variables)]
    return g, self._accumulate(self._compiled("hg", self._hg), data,
                               num_batches, gt, t)


# One Saliency (and its traced functions) per model, variables and loss:
# iterative rounds and repeated calls do not retrace.
_CACHE = weakref.WeakKeyDictionary()


def for_model(model, variables: Sequence, loss=None) -> Saliency:
  """A cached :class:`Saliency` for ``model`` (keyed by variables and loss)."""
  cache = _CACHE.setdefault(model, {})
  key = (tuple(id(v) for v in variables), id(loss))
  if key not in cache:
    cache[key] = (Saliency(model, variables, loss=loss), loss)  # keeps id
  return cache[key][0]


@dataclasses.dataclass
class ScoreContext(_k2_scores.ScoreContext):
  """:class:`sbp_tf.pruning.ScoreContext` whose gradients come from Keras 3.

  ``ctx.weights()``, ``ctx.gradients()`` and
  ``ctx.gradient_and_hessian_gradient()`` behave as on the tf_keras path.
  """

  def _saliency(self):
    if self.strategy is not None:
      raise ValueError("sbp_tf.keras3 scores on one device; strategy= is "
                       "not supported. Fix: pass strategy=None.")
    return for_model(self.model, [t.variable for t in self.targets],
                     loss=self.loss)


__all__ = ["Saliency", "ScoreContext", "default_loss", "for_model",
           "per_example"]
