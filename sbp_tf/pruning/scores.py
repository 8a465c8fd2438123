"""Saliency methods and their registry.

A method is a small class with ``score(ctx) -> {key: array}``; register it
with :func:`register_method` and it is usable by ``prune(model, name, ...)``.
``keep = 'largest'`` keeps the highest scores, ``'smallest'`` the lowest.

Scores (``W`` a prunable kernel, ``L`` the loss summed over the scoring
batches, each batch a mean over its examples):

* ``sbp`` / ``snip``: ``|W * dL/dW|`` (sensitivity, Lee et al. 2019).
* ``magnitude``: ``|W|``.
* ``random``: i.i.d. uniform scores from ``seed``.
* ``grasp``: ``-W * (H g)``, ``g = dL_T/dW``, ``H = d^2 L_T / dW^2``,
  ``L_T`` the loss of ``logits / 200``; the highest scores are removed
  (Wang et al. 2020).
* ``synflow``: ``|W * dR/dW|``, ``R = 1^T f_|W|(1)``: the sum of the outputs
  of the network with every weight replaced by ``|W|``, biases 0 and batch
  norm the identity, on one all-ones input (Tanaka et al. 2020). Data-free;
  100 rounds of the exponential schedule by default.

Usage::

    @register_method("gradnorm")
    class GradNorm(Method):
      needs_data = True
      def score(self, ctx):
        return {k: np.abs(g) for k, g in ctx.gradients().items()}
"""

import dataclasses
from typing import Callable, Dict, List, Optional

import numpy as np

from sbp_tf.compat import tf
from sbp_tf.pruning import saliency, state

_REGISTRY: Dict[str, type] = {}


@dataclasses.dataclass
class ScoreContext:
  """What a method may use to score.

  Attributes:
    model: the Keras model; pruned weights of earlier rounds are zero.
    targets: the prunable targets (``key``, ``layer``, ``attr``, ``variable``).
    data: ``(x, y)`` tuple or Dataset (None for data-free calls).
    loss: loss for :mod:`saliency`.
    num_batches: batches to accumulate over.
    seed: user seed (None: nondeterministic).
    round_index: 0-based round of iterative pruning.
    masks: key -> current 0/1 mask (all ones in round 0).
    strategy: a ``tf.distribute.Strategy`` or None.
  """
  model: object
  targets: List
  data: object = None
  loss: object = None
  num_batches: int = 1
  seed: Optional[int] = None
  round_index: int = 0
  masks: Optional[Dict[str, np.ndarray]] = None
  strategy: object = None

  def weights(self) -> Dict[str, np.ndarray]:
    """Current kernel values (float64)."""
    return {t.key: t.variable.numpy().astype(np.float64) for t in self.targets}

  def _saliency(self):
    return saliency.for_model(self.model, [t.variable for t in self.targets],
                              loss=self.loss, strategy=self.strategy)

  def gradients(self, temperature: float = 1.0) -> Dict[str, np.ndarray]:
    """``dL/dW`` summed over ``num_batches`` batches."""
    g = self._saliency().gradients(self.data, self.num_batches, temperature)
    return {t.key: a for t, a in zip(self.targets, g)}

  def gradient_and_hessian_gradient(self, temperature: float = 1.0):
    """``(g, H g)`` dicts, with ``H g`` by double backprop, ``g`` constant."""
    g, hg = self._saliency().gradient_and_hessian_gradient(
        self.data, self.num_batches, temperature)
    return ({t.key: a for t, a in zip(self.targets, g)},
            {t.key: a for t, a in zip(self.targets, hg)})


class Method:
  """Base class of a pruning score. Override :meth:`score`.

  Class attributes: ``needs_data`` (data required), ``keep`` ('largest' or
  'smallest'), ``default_rounds`` (rounds when the user passes none).
  """
  name = "?"
  needs_data = False
  keep = "largest"
  default_rounds = 1

  def score(self, ctx: ScoreContext) -> Dict[str, np.ndarray]:
    raise NotImplementedError


def register_method(name: str, *aliases: str) -> Callable[[type], type]:
  """Class decorator registering a :class:`Method` under ``name`` (+aliases)."""
  def deco(cls):
    if not (isinstance(cls, type) and issubclass(cls, Method)):
      raise TypeError(f"@register_method({name!r}) decorates a subclass of "
                      "sbp_tf.pruning.Method overriding score(ctx).")
    cls.name = name
    for n in (name,) + aliases:
      _REGISTRY[n] = cls
    return cls
  return deco


def methods() -> List[str]:
  """Registered method names (aliases included), sorted."""
  return sorted(_REGISTRY)


def get(name: str) -> Method:
  """An instance of the method registered as ``name``.

  Raises:
    ValueError: unknown name (listing the registered ones).
  """
  if not isinstance(name, str) or name not in _REGISTRY:
    raise ValueError(f"Unknown pruning method {name!r}. Fix: use one of "
                     f"{', '.join(methods())}, or register one with "
                     "@sbp_tf.pruning.register_method.")
  return _REGISTRY[name]()


@register_method("sbp", "snip")
class SensitivityBased(Method):
  """``|W * dL/dW|`` (SBP = SNIP's connection sensitivity)."""
  needs_data = True

  def score(self, ctx):
    g = ctx.gradients()  # fresh float64 arrays: score in place, no copies
    for t in ctx.targets:
      s = g[t.key]
      np.multiply(s, t.variable.numpy(), out=s)  # float32 W exact in float64
      np.abs(s, out=s)
    return g


@register_method("magnitude", "mbp")
class Magnitude(Method):
  """``|W|``."""

  def score(self, ctx):
    return {k: np.abs(v) for k, v in ctx.weights().items()}


@register_method("random")
class Random(Method):
  """Uniform scores, reproducible from ``(seed, round)``."""

  def score(self, ctx):
    rng = np.random.default_rng(
        None if ctx.seed is None else [int(ctx.seed), ctx.round_index])
    return {t.key: rng.random(tuple(t.variable.shape)) for t in ctx.targets}


@register_method("grasp")
class GraSP(Method):
  """``-W * (H g)`` at temperature 200; the highest scores are removed."""
  needs_data = True
  keep = "smallest"
  temperature = 200.0

  def score(self, ctx):
    w = ctx.weights()
    _, hg = ctx.gradient_and_hessian_gradient(self.temperature)
    return {k: -w[k] * hg[k] for k in w}


@register_method("synflow")
class SynFlow(Method):
  """``|W * dR/dW|``, ``R = sum f_|W|(ones)``; data-free, 100 rounds."""
  default_rounds = 100

  def _synflow(self, ctx, scale: Dict[str, float]):
    model = ctx.model
    # Two identical all-ones rows, R averaged over them: the same R and
    # gradient as one row, but TF 2.21's oneDNN CPU kernels corrupt the heap
    # on the weight gradient of a 1x1 stride-2 conv with few input channels
    # at batch size 1 (uxlfoundation/oneDNN#6035); batch 2 avoids it.
    shape = [2] + [int(d) for d in model.input_shape[1:]]
    if any(d is None for d in model.input_shape[1:]):
      raise ValueError(f"synflow needs a fixed input shape, got "
                       f"{model.input_shape}. Fix: build the model with a "
                       "full input_shape.")
    variables = [t.variable for t in ctx.targets]
    grad = getattr(self, "_grad", None)
    if grad is None:  # one trace for all rounds of this prune() call
      ones = tf.ones(shape, model.inputs[0].dtype if model.inputs else
                     tf.float32)

      @tf.function
      def grad():
        with tf.GradientTape() as tape:
          out = tf.nest.flatten(model(ones, training=False))
          r = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float64)) for o in out]
                       ) / 2.0
        return r, tape.gradient(r, variables)
      self._grad = grad

    with state.linearized(model, lambda k, w: np.abs(w) / scale.get(k, 1.0)):
      r, gs = grad()
      w = {t.key: np.abs(t.variable.numpy().astype(np.float64))
           for t in ctx.targets}
      gs = [np.zeros(v.shape) if g is None else g.numpy().astype(np.float64)
            for g, v in zip(gs, variables)]
    with np.errstate(over="ignore", invalid="ignore"):  # checked by caller
      return float(r.numpy()), {t.key: np.abs(w[t.key] * g)
                                for t, g in zip(ctx.targets, gs)}

  def score(self, ctx):
    # Inside state.linearized every activation is the identity and every
    # bias 0, so R is linear in each kernel: dividing kernel l by c_l divides
    # every score by the same prod(c), and the ranking is unchanged. Deep
    # nets overflow float32 unscaled (ResNet104: R ~ 1e130), so on overflow
    # retry with c_l = the mean, then the max, absolute fan-in sum of layer
    # l. The max makes every layer non-expansive on nonnegative inputs (a
    # residual block then at most doubles the signal); the mean keeps more
    # of the signal in deep plain nets, where the max could underflow.
    finite = None
    for how in ("none", "mean", "max"):
      scale = {} if how == "none" else self._fan_in_scale(ctx, how)
      r, s = self._synflow(ctx, scale)
      if np.isfinite(r) and all(np.all(np.isfinite(v)) for v in s.values()):
        if r > 0:
          return s
        finite = s  # R = 0: underflow, or no input-output path is left
    if finite is not None:
      # No scale gives R > 0: no path is left (or every one underflows), so
      # every score is 0; ties then fall back to position and prune()'s
      # connectivity check reports the disconnection.
      return finite
    raise FloatingPointError(
        f"synflow: R = {r} is not finite even with each kernel divided by "
        "its max absolute fan-in sum (float32 overflow). Fix: prune fewer "
        "rounds or a lower sparsity.")

  @staticmethod
  def _fan_in_scale(ctx, how: str) -> Dict[str, float]:
    scale = {}
    for t in ctx.targets:
      a = np.abs(t.variable.numpy().astype(np.float64))
      fan = a.reshape(-1, a.shape[-1]).sum(0)
      c = float(fan.max() if how == "max" else fan.mean())
      scale[t.key] = c if c > 0 else 1.0
    return scale
