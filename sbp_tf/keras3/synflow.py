"""SynFlow scores of a Keras 3 model, exact in float64.

The score of :class:`sbp_tf.pruning.scores.SynFlow` (Tanaka et al. 2020)::

    S(W) = |W * dR/dW|,   R = 1^T f_|W|(1)

``f_|W|`` is the network with every weight ``|w|``, biases 0, batch norm
the identity and every activation the identity, on one all-ones input: ``R``
is the sum over input-output paths of the products of ``|w|`` on them.

Here ``R`` and ``dR/dW`` come from a float64 clone of the Keras 3 model
(rebuilt from its layer configs with ``dtype='float64'`` and activations
``'linear'``), so deep networks do not overflow (ResNet104: ``R ~ 1e147``).
The clone's layers are in the linear form of the tf_keras path
(:func:`sbp_tf.keras3.state.linearize_layers`, the same functions):

* activation and clipping layers (ReLU, also ``max_value=6``, LeakyReLU,
  ELU, PReLU, any ``Activation``) and LayerNormalization,
  GroupNormalization, UnitNormalization, Normalization and Rescaling are
  the identity (a ReLU6 would clip the all-ones signal: zero scores);
* ``Multiply([x, g, ...])`` (squeeze-excite, gates): the first input of the
  largest size is the signal, every other input a gate at its pass-through
  value 1; backward the flow ``x dR/dout`` is split in half between signal
  and gate (``dR/dx = dR/dout / 2``, ``dR/dg = sum x dR/dout / (2 g)``), so
  the gate's kernels are scored and scores stay conserved. The product
  itself would make ``R`` a polynomial whose degree doubles at every gated
  block (EfficientNetB0: 16 blocks, ``R = inf`` even in float64);
* ``Softmax`` is uniform ``1/T``, backward ``dR/dlogit = dR/dp / (2 T
  logit)`` (query/key kernels get half the value flow each).

So for the same weights both paths compute the same ``R`` and scores (equal
masks on EfficientNetB0, tested). Before use the clone's traced graph is
checked to compute no narrower float tensor (constants aside). When the
model cannot be cloned (a layer without a usable ``get_config``) or
``precision='float32'`` is asked for, the same formula runs in float32 on
the model itself, in the same linear form while it runs.

Usage::

    from sbp_tf.keras3 import prune
    scores = prune.score(model, "synflow")       # one round of SynFlow
"""

from typing import Dict, List

import numpy as np

from sbp_tf.keras3 import state
from sbp_tf.keras3._runtime import keras, require_tensorflow
from sbp_tf.pruning import scores as _k2_scores

_input_shapes = _k2_scores.input_shapes  # the same rule on both paths


def _float64_config(config):
  """``config`` with float dtypes float64, activations linear, initializers
  zeros (every weight is overwritten), no constraints or regularizers."""
  if isinstance(config, dict):
    out = {}
    for k, v in config.items():
      if k == "dtype" and (v is None or isinstance(v, dict)
                           or "float" in str(v)):
        out[k] = "float64"
      elif k == "activation" and v is not None:
        out[k] = "linear"
      elif k.endswith("initializer") and v is not None:
        out[k] = {"class_name": "Zeros", "config": {}}
      elif k.endswith(("constraint", "regularizer")):
        out[k] = None
      else:
        out[k] = _float64_config(v)
    return out
  if isinstance(config, (list, tuple)):
    return type(config)(_float64_config(v) for v in config)
  return config


def _clone_layer(layer):
  return layer.__class__.from_config(_float64_config(layer.get_config()))


def _by_name(model) -> Dict[str, object]:
  return {l.name: l for l in state.sublayers(model)}


def _float64_clone(model, shapes):
  """The clone, ``id(model variable) -> clone variable`` and a probe."""
  ins = [keras.Input(shape=s[1:],
                     dtype="float64" if "float" in str(x.dtype) else x.dtype)
         for s, x in zip(shapes, model.inputs)]
  clone = keras.models.clone_model(
      model, input_tensors=ins if len(ins) > 1 else ins[0],
      clone_function=_clone_layer, recursive=True)
  theirs = _by_name(clone)
  mapped = {}
  for name, layer in _by_name(model).items():
    if not layer.weights:
      continue
    other = theirs.get(name)
    if other is None or len(other.weights) != len(layer.weights) or any(
        tuple(a.shape) != tuple(b.shape)
        for a, b in zip(layer.weights, other.weights)):
      raise ValueError(f"the clone's layer {name!r} does not match the model's")
    mapped.update({id(a): b for a, b in zip(layer.weights, other.weights)})
  state.linearize_layers(clone)  # for good: the clone is ours
  return clone, mapped


def float64_runner(model, targets):
  """``run()``: ``(R, {key: score})`` on a float64 clone; raises if none.

  Every call copies the model's current linearized values into the clone,
  so rounds of iterative pruning (pruned kernels zero) score the pruned net.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shapes = _input_shapes(model)
  clone, mapped = _float64_clone(model, shapes)
  kernels = [mapped[id(t.variable)] for t in targets]
  ones = [tf.ones(s, tf.float64) for s in shapes]
  ones = ones if len(ones) > 1 else ones[0]

  @tf.function(autograph=False)
  def grad():
    with tf.GradientTape() as tape:
      out = tf.nest.flatten(clone(ones, training=False))
      r = tf.add_n([tf.reduce_sum(o) for o in out])
    return r, tape.gradient(r, [k.value for k in kernels])

  # A float32 constant (e.g. a layer's stored scale) is cast once and is
  # exact input; a float32 computation would round every path product.
  narrow = sorted({o.dtype.name for op in grad.get_concrete_function().graph
                   .get_operations() if op.type != "Const" for o in op.outputs
                   if o.dtype in (tf.float32, tf.float16, tf.bfloat16)})
  if narrow:
    raise ValueError(f"the float64 clone computes in {', '.join(narrow)}")

  def run():
    for v, new in state.linear_values(
        model, lambda k, w: np.abs(w.astype(np.float64))):
      c = mapped.get(id(v))
      if c is not None:
        c.assign(np.asarray(new, np.float64))
    r, gs = grad()
    with np.errstate(over="ignore", invalid="ignore"):  # checked by caller
      return float(r.numpy()), {
          t.key: np.abs(k.numpy() * (0.0 if g is None else g.numpy()))
          for t, k, g in zip(targets, kernels, gs)}
  return run


def float32_runner(model, targets):
  """As :func:`float64_runner`, in float32 on ``model`` itself (two all-ones
  rows, ``R`` halved), inside :func:`state.linearized`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shapes = _input_shapes(model)
  ones = [tf.ones([2] + s[1:]) for s in shapes]
  ones = ones if len(ones) > 1 else ones[0]
  variables = [t.variable for t in targets]

  def run():
    with state.linearized(model, lambda k, w: np.abs(w), layers=True):
      with tf.GradientTape() as tape:
        out = tf.nest.flatten(model(ones, training=False))
        r = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float64)) for o in out]) / 2
      gs = tape.gradient(r, [v.value for v in variables])
      w = [np.abs(v.numpy().astype(np.float64)) for v in variables]
    with np.errstate(over="ignore", invalid="ignore"):  # checked by caller
      return float(r.numpy()), {
          t.key: a * (0.0 if g is None else
                      np.abs(g.numpy().astype(np.float64)))
          for t, a, g in zip(targets, w, gs)}
  return run


class SynFlow(_k2_scores.SynFlow):
  """:class:`sbp_tf.pruning.scores.SynFlow` on Keras 3 models (same options:
  ``precision='float64'`` or ``'float32'``; 100 rounds by default)."""

  def score(self, ctx):
    require_tensorflow("synflow")
    cached = self._cached
    if cached is None or cached[0] is not ctx.model:
      run, why = None, "precision='float32' was asked for"
      if self.precision == "float64":
        try:
          run = float64_runner(ctx.model, ctx.targets)
        except Exception as e:  # pylint: disable=broad-except
          why = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
      cached = (ctx.model, run or float32_runner(ctx.model, ctx.targets),
                run is not None, why)
      self._cached = cached
    r, s = cached[1]()
    if np.isfinite(r) and all(np.all(np.isfinite(v)) for v in s.values()):
      return s  # (R = 0: no path left; all-zero scores, ties by position)
    where = "float64" if cached[2] else f"float32 ({cached[3]})"
    raise ValueError(
        f"synflow: R = {r} is not finite in {where}. Fix: use a shallower "
        "network or a smaller-variance initialization"
        + ("" if cached[2] else ", or give every layer a get_config so "
           "synflow runs on a float64 clone") + ".")


__all__ = ["SynFlow", "float32_runner", "float64_runner"]
