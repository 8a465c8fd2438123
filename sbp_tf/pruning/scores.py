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
  norm the identity, on one all-ones input (Tanaka et al. 2020), computed
  exactly in float64 (:class:`SynFlow`). Data-free; 100 rounds of the
  exponential schedule by default; ``biases='abs'`` puts ``|b|`` and batch
  norm's ``|parameters|`` in ``f_|W|`` instead (:mod:`conventions`).
* ``obd``: ``0.5 * H_ii * W^2`` (Optimal Brain Damage), in :mod:`obd`.

Usage::

    @register_method("gradnorm")
    class GradNorm(Method):
      needs_data = True
      def score(self, ctx):
        return {k: np.abs(g) for k, g in ctx.gradients().items()}
"""

import dataclasses
import inspect
import warnings
from typing import Callable, Dict, List, Optional

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import tf
from sbp_tf.pruning import conventions, diagnostics, precision, saliency
from sbp_tf.pruning import state
from sbp_tf.pruning import kit as kit_lib
from sbp_tf.pruning import targets as targets_lib
from sbp_tf.pruning.targets import layer_targets

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
    loss_weights: weight of each output's loss (dict by name or list).
    kit: the Keras path's hooks (:mod:`sbp_tf.pruning.kit`; None: tf_keras).
    scoring_mode: ``'training'`` (batch statistics) or ``'inference'``: the
      forward pass the gradients differentiate (:mod:`conventions`).
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
  loss_weights: object = None
  kit: object = None
  scoring_mode: str = "training"

  def weights(self) -> Dict[str, np.ndarray]:
    """Current kernel values (float64)."""
    return {t.key: t.variable.numpy().astype(np.float64) for t in self.targets}

  def _saliency(self):
    return saliency.for_model(
        self.model, [t.variable for t in self.targets], loss=self.loss,
        strategy=self.strategy, loss_weights=self.loss_weights,
        training=conventions.training_flag(self.scoring_mode))

  def loss_plan(self) -> saliency.LossPlan:
    """Which loss (and ``from_logits``) each output gets; see
    :func:`saliency.resolve_loss`."""
    return self._saliency().plan

  def gradients(self, temperature: float = 1.0) -> Dict[str, np.ndarray]:
    """``dL/dW`` summed over ``num_batches`` batches."""
    g = self._saliency().gradients(self.data, self.num_batches, temperature)
    return {t.key: a for t, a in zip(self.targets, g)}

  def hessian_vector_products(self, vectors, temperature: float = 1.0):
    """``[H v]`` (key -> array dicts) for each ``v`` (a key -> array dict),
    ``H`` the Hessian of the loss summed over ``num_batches`` batches."""
    keys = [t.key for t in self.targets]
    out = self._saliency().hessian_vector_products(
        self.data, [[v[k] for k in keys] for v in vectors], self.num_batches,
        temperature)
    return [dict(zip(keys, hv)) for hv in out]

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
  A method's parameters are the keyword arguments of its ``__init__``
  (with defaults); ``prune(..., **options)`` and ``config.prune.options``
  reach them, checked by :func:`check_options`.
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


def _lookup(name: str) -> type:
  if not isinstance(name, str) or name not in _REGISTRY:
    raise ValueError(f"Unknown pruning method {name!r}. Fix: use one of "
                     f"{', '.join(methods())}, or register one with "
                     "@sbp_tf.pruning.register_method.")
  return _REGISTRY[name]


def _signature_options(cls: type) -> Dict[str, inspect.Parameter]:
  params = inspect.signature(cls.__init__).parameters
  return {n: p for n, p in params.items() if n != "self" and p.kind in (
      p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def method_options(name: str) -> Dict[str, object]:
  """The parameters of method ``name`` and their defaults.

  Example: ``method_options("grasp")  # {'temperature': 200.0}``.
  """
  return {n: p.default for n, p in _signature_options(_lookup(name)).items()}


def option_types(name: str) -> Dict[str, type]:
  """The type of each parameter of method ``name``: its annotation, else the
  type of its default (used to type config fields)."""
  out = {}
  for n, p in _signature_options(_lookup(name)).items():
    t = (p.annotation if p.annotation is not p.empty
         and isinstance(p.annotation, type) else None)
    out[n] = t or (type(p.default) if p.default is not p.empty
                   and p.default is not None else None)
  return out


def check_options(cls: type, options: Dict[str, object]) -> None:
  """Raises ValueError naming any option ``cls.__init__`` does not take."""
  valid = _signature_options(cls)
  bad = sorted(set(options) - set(valid))
  if bad:
    raise ValueError(
        f"Unknown option(s) {bad} for pruning method "
        f"{getattr(cls, 'name', cls.__name__)!r}. Fix: use only "
        f"{sorted(valid) or 'no options'}.")


def get(name: str, **options) -> Method:
  """An instance of the method registered as ``name``, built with ``options``.

  Raises:
    ValueError: unknown name (listing the registered ones) or option
      (listing the method's).
  """
  cls = _lookup(name)
  check_options(cls, options)
  return cls(**options)


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
  """``-W * (H g)`` of the loss of ``logits / temperature`` (200 in Wang et
  al. 2020); the highest scores are removed."""
  needs_data = True
  keep = "smallest"

  def __init__(self, temperature: float = 200.0):
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
        or not temperature > 0):
      raise ValueError(f"grasp: temperature must be a number > 0, got "
                       f"{temperature!r}. Fix: e.g. temperature=200.0.")
    self.temperature = float(temperature)

  def score(self, ctx):
    w = ctx.weights()
    _, hg = ctx.gradient_and_hessian_gradient(self.temperature)
    return {k: -w[k] * hg[k] for k in w}


@register_method("synflow")
class SynFlow(Method):
  """Iterative Synaptic Flow (Tanaka et al. 2020), exact in float64.

  The score of a prunable kernel ``W`` is::

      S(W) = |W * dR/dW|,   R = 1^T f_|W|(1) = sum_p c_p prod_{w in p} |w|

  ``f_|W|`` is the network in the :func:`state.linearized` state (every
  weight ``|w|``, biases 0, batch norm ``x / sqrt(1 + eps)``, activations
  the identity; with ``biases='abs'`` every bias and batch-norm parameter
  and moving statistic ``|value|`` instead, batch norm in inference mode:
  the reference implementation's linearization, :mod:`conventions`) on one
  all-ones input, so ``R``, the sum of its outputs, is
  the sum over input-output paths ``p`` of the product of the ``|w|`` on
  ``p`` (``c_p`` collects the constants on it: pooling, Stable ResNet's
  ``1 / sqrt(L)``, batch norm's ``1 / sqrt(1 + eps)``). Data-free; 100
  rounds of the exponential schedule by default.

  Inputs: every input of the model (any number, in a list or a dict) is
  all ones, of the shape the model records (a functional or Sequential
  model's inputs; a subclassed model's first call, or its ``build`` shape).
  An integer input (token ids) is token id 1 at every position, so an
  ``Embedding`` feeds ``|E[1]|`` (row 1 of ``|E|``) to every position.
  Embeddings are prunable targets like kernels: an embedding's own score is
  nonzero only in row 1 (the only row on a path), so its other rows score 0
  and are the first pruned; it must have ``input_dim >= 2``.

  ``R`` and ``dR/dW`` are computed on a float64 copy of the network (cloned
  from its config with every layer in float64; float32 weights are exact in
  float64), with no rescaling: deep nets overflow float32 (ResNet104:
  ``R ~ 1e147``) but fit in float64 (max ~1e308). Rescaling kernel ``l`` by
  ``1 / a_l`` scales path ``p`` by ``prod_{l on p} 1 / a_l``: the same factor
  for every path only in a chain, where every path crosses every layer. With
  skip connections ``R`` is affine, not linear, in each kernel and such a
  rescaling changes the ranking (on ResNet32-104 at 90% sparsity it kept
  95-98% of the exact kept set, and 83-96% of the projection shortcuts,
  where exact SynFlow keeps none), so it is only a fallback for chains.

  Fallbacks:

  * The model cannot be cloned in float64 (a subclassed model, a layer
    without a usable ``get_config``/``from_config``, or one computing in
    another dtype): the same formula in float32 on the model itself (batch
    of two all-ones rows, ``R`` halved; see ``_float32_runner``).
  * ``R`` or a score is not finite (or ``R`` underflows to 0): for a chain
    (:func:`_is_chain`), retry with each kernel divided by its mean, then
    its max, absolute fan-in sum ``a_l`` (the scores are those of the
    exact ones divided by ``prod_l a_l``: same ranking). ``R = 0`` gives
    all-zero scores, with a warning, only where the connectivity pass
    reaches no output (no path left); otherwise it is an underflow: the
    chain retry, else ValueError. Never silent zero scores.

  Raises:
    ValueError: ``R`` overflows and the model is not a chain (or is still
      not finite after rescaling); or the model's input shape is unknown
      (never called or built) or not fixed.
  """
  default_rounds = 100
  PRECISIONS = ("float64", "float32")

  def __init__(self, precision: str = "float64", biases: str = "zero"):
    """``precision='float32'`` skips the float64 clone (the fallback path);
    ``biases``: ``'zero'`` (Tanaka et al.) or ``'abs'`` (the reference's)."""
    if precision not in self.PRECISIONS:
      raise ValueError(f"synflow: precision={precision!r} is not known. Fix: "
                       f"use one of {self.PRECISIONS}.")
    conventions.check_biases(biases)
    self.precision = precision
    self.biases = biases

  def score(self, ctx):
    kit = kit_lib.resolve(ctx.kit)
    run = _runner(ctx.model, ctx.targets, kit, self.precision, self.biases)
    zero, chain = None, None
    for how in ("none", "mean", "max"):
      if how != "none":
        # Per-layer rescaling would change the ranking: R is affine, not
        # homogeneous, in each kernel with |b| biases, as it is off a chain.
        chain = (_is_chain(ctx.model) and self.biases == "zero"
                 if chain is None else chain)
        if not chain:
          break
      scale = {} if how == "none" else _fan_in_scale(ctx, how)
      r, s = run(scale)
      if np.isfinite(r) and all(np.all(np.isfinite(v)) for v in s.values()):
        if r > 0:
          return s
        zero = s  # R = 0: no input-output path left, or underflow
    if zero is not None and _no_path_left(ctx.model, kit):
      # A true R = 0 (pruned or zero kernels cut every path): every score
      # 0, said so; ties fall back to position and prune()'s connectivity
      # check reports the disconnection.
      warnings.warn("synflow: R = 0: no input-output path is left (the "
                    "connectivity pass reaches no output), so every score "
                    "is 0 and the kept weights are the first by position.",
                    stacklevel=2)
      return zero
    where = ("float64" if run.float64 else
             "float32 (the model could not be cloned in float64: "
             f"{run.reason})")
    raise ValueError(
        (f"synflow: R underflows to 0 in {where} although input-output "
         "paths exist (all scores would be 0)" if zero is not None else
         f"synflow: R = {r} is not finite in {where}")
        + ("" if chain else ", and per-layer rescaling, which would fix it, "
           "changes the ranking of a network with skip connections or "
           "merges, or with biases='abs' (R is affine, not linear, in each "
           "kernel)")
        + ". Fix: " + ("give every layer a get_config (a functional or "
                       "Sequential model of serializable layers), so synflow "
                       "runs on a float64 clone, or "
                       if not run.float64 else "")
        + "use a shallower network or a smaller-variance initialization.")


# A SynFlow runner (a float64 clone and its traced step) is built once per
# model, targets and precision and kept on the model, as saliency keeps its
# traced functions: every prune() or score() call on that model, and every
# round, reuses it. It reads the model's weights on each run, so changed
# weights and masks are always seen; a different target set, input shape,
# precision, bias convention or registered linear form is a different key.
_RUNNER_ATTR = "_sbp_tf_synflow_runners"


def _runner(model, targets, kit, precision_name: str, biases: str = "zero"):
  """The cached ``run(scale)`` of ``model`` (see :func:`_float64_runner`)."""
  key = (precision_name, biases, getattr(kit, "name", None),
         tuple((t.key, id(t.variable)) for t in targets),
         tuple(tuple(s) for s in input_shapes(model)),
         state.linearization_key())  # the clone's activations
  cache = model.__dict__.get(_RUNNER_ATTR)
  if cache is None:
    cache = {}
    object.__setattr__(model, _RUNNER_ATTR, cache)
  if key not in cache:
    run, why = ((None, "precision='float32' was asked for")
                if precision_name == "float32"
                else _float64_runner(model, targets, kit, biases))
    cache[key] = run or _float32_runner(model, targets, why, kit, biases)
  return cache[key]


def _no_path_left(model, kit) -> bool:
  """Whether the connectivity pass (kernels ``(w != 0) / kept fan-in``, no
  underflow) reaches no output, so ``R = 0`` exactly; False where the pass
  is unavailable (then ``R = 0`` is reported as an underflow)."""
  try:
    return diagnostics.connectivity(model, kit=kit).reachable_fraction == 0.0
  except Exception:  # pylint: disable=broad-except
    return False


def _fan_in_scale(ctx, how: str) -> Dict[str, float]:
  """Per kernel: the mean or max over units of its absolute fan-in sum."""
  scale = {}
  for t in ctx.targets:
    a = np.abs(t.variable.numpy().astype(np.float64))
    fan = a.reshape(-1, a.shape[-1]).sum(0)
    c = float(fan.max() if how == "max" else fan.mean())
    scale[t.key] = c if c > 0 else 1.0
  return scale


def _recorded_inputs(model):
  """``(specs, struct)``: each input of ``model`` as a ``tf.TensorSpec``
  (batch dimension first), flat, and the structure the model takes them in
  (None: one tensor or a flat list).

  A functional or Sequential model (tf_keras or Keras 3) records its inputs;
  a subclassed tf_keras model records the arguments of its first call
  (``save_spec``), or, if it was only built, the shape given to ``build``
  (float inputs, as ``build`` feeds).

  Raises:
    ValueError: the model records no inputs (never called or built).
  """
  inputs = getattr(model, "inputs", None)
  if inputs:
    specs = [tf.TensorSpec(tuple(x.shape), x.dtype) for x in inputs]
    try:
      struct = model.input
    except (AttributeError, ValueError):  # no recorded structure: flat
      struct = None
    return specs, struct
  struct = compat.call_spec(model)  # subclassed: its first call or build
  if struct is None and getattr(model, "built", False):
    raise ValueError(  # built, yet no shape kept (a Keras 3 subclassed model)
        f"synflow needs the input shape of model {model.name!r}, which it "
        "does not record. Fix: build it as a functional or Sequential model.")
  if struct is None:
    raise ValueError(
        f"synflow needs the input shape of model {model.name!r}, which has "
        "never been called or built, so it records none. Fix: call it once "
        "on a batch of inputs (model(x)) or build it "
        "(model.build(input_shape)) before pruning.")
  return tf.nest.flatten(struct), struct


def input_shapes(model) -> List[List[int]]:
  """Per model input (tf_keras or Keras 3; functional, Sequential or a
  subclassed model called or built once): its shape with batch 1.

  Raises:
    ValueError: the shape is not fixed, or not known (see
      :func:`_recorded_inputs`).
  """
  specs, _ = _recorded_inputs(model)
  shapes = [list(x.shape[1:]) for x in specs]
  if any(d is None for s in shapes for d in s):
    raise ValueError(f"synflow needs a fixed input shape, got "
                     f"{[tuple(x.shape) for x in specs]}. Fix: build "
                     "the model with a full input shape.")
  return [[1] + [int(d) for d in s] for s in shapes]


def _all_ones(model, shapes, batch: int):
  """SynFlow's input: ``batch`` all-ones rows for every input of ``model``
  (``shapes`` from :func:`input_shapes`), in the model's input structure
  (one tensor, a list, or a dict by input name).

  Floating inputs are 1.0 in their dtype; integer inputs (token ids) are id
  1, so an ``Embedding`` feeds its row 1, ``|W[1]|`` in the linearized
  state, at every position.
  """
  specs, struct = _recorded_inputs(model)
  flat = [tf.ones([batch] + s[1:], x.dtype) for s, x in zip(shapes, specs)]
  if struct is not None and len(tf.nest.flatten(struct)) == len(flat):
    return tf.nest.pack_sequence_as(struct, flat)
  return flat if len(flat) > 1 else flat[0]


def _dense(grads) -> list:
  """Gradients as dense tensors (None kept): an embedding looked up by
  token ids gets ``IndexedSlices``."""
  return [g if g is None else tf.convert_to_tensor(g) for g in grads]


def _tensor(v):
  """A variable's value as a tensor (a Keras 3 variable wraps a tf one)."""
  return tf.convert_to_tensor(v)


def _float64_clone(model, targets, shapes, kit):
  """``model`` rebuilt from its config in float64 with identity activations.

  Returns ``(clone, own, cloned, mapped, kernels)``: the model's and the
  clone's unique weights, ``id(own weight) -> clone weight`` and the clone's
  kernels in ``targets`` order. Raises if the weights do not correspond.
  """
  clone, pairs = precision.clone(model, compat.keras_of(model), "float64",
                                 shapes)
  own, cloned = [v for v, _ in pairs], [c for _, c in pairs]
  mapped = {id(v): c for v, c in pairs}
  by_key = {t.key: t.variable for t in kit.prunable_targets(clone)}
  if any(mapped.get(id(t.variable)) is not by_key.get(t.key)
         for t in targets):
    raise ValueError("the clone's weights do not match the model's")
  state.linearize_activations(clone)  # for good: the clone is ours
  return clone, own, cloned, mapped, [by_key[t.key] for t in targets]


def _check_float64(grad) -> None:
  """Raises ValueError if ``grad``'s graph computes in a narrower float."""
  # Constants compute nothing (the gradient of a non-fused batch norm
  # holds empty float32 reduction-index constants): only ops that do.
  narrow = sorted({o.dtype.name
                   for op in grad.get_concrete_function().graph
                   .get_operations() if op.type != "Const"
                   for o in op.outputs
                   if o.dtype in (tf.float32, tf.float16, tf.bfloat16)})
  if narrow:
    raise ValueError(f"the float64 clone computes in {', '.join(narrow)}")


def _round_step(model, kit, biases, mapped, own, cloned, grad, kernels):
  """``(step, keys)``: ``step(scale)`` is one compiled SynFlow round of the
  float64 clone, ``keys`` the order of ``scale``'s entries."""
  # One compiled step per round: the clone's weights set in the graph from
  # the model's current ones (the linearized values, state.linear_roles),
  # R, dR/dW and |W * dR/dW|, so a round moves only the scores to the host.
  # The same IEEE float64 operations as in numpy: bit-identical scores.
  keys = sorted({t.key for t in kit.prunable_targets(model)})
  slot = {k: i for i, k in enumerate(keys)}
  plan = [(v, mapped[id(v)], role, arg)
          for v, role, arg in state.linear_roles(model, biases)
          if id(v) in mapped]  # (Keras 3: seed states are not weights)
  plan += [(v, c, "as_is", None) for v, c in zip(own, cloned)
           if not state.is_floating(v)]  # integer state (step counters)

  @tf.function(autograph=False)
  def step(scale):
    for v, c, role, arg in plan:
      if role == "kernel":
        new = tf.abs(tf.cast(_tensor(v), tf.float64)) / scale[slot[arg]]
      elif role == "const":
        new = tf.fill(tf.shape(_tensor(c)), tf.constant(arg, c.dtype))
      elif role == "zero":
        new = tf.zeros_like(_tensor(c))
      elif role == "abs":
        new = tf.cast(tf.abs(_tensor(v)), c.dtype)
      else:
        new = _tensor(v)
      c.assign(new)
    r, gs = grad()
    return r, [tf.abs(_tensor(k) * (0.0 if g is None else g))
               for k, g in zip(kernels, gs)]

  return step, keys


def _float64_runner(model, targets, kit, biases="zero"):
  """``(run, None)``: a float64 SynFlow of ``model``; ``(None, why)`` if none.

  ``run(scale)`` returns ``(R, scores)`` with kernel ``l`` divided by
  ``scale[l]`` (default 1).

  The clone (``model`` rebuilt from its config, every dtype float64, same
  layer names, its activations the identity) gets, on each call, the values
  :func:`state.linear_values` would give ``model`` (float32 exact in
  float64), set inside the compiled step (:func:`state.linear_roles`); its
  gradient graph is checked to hold no tensor of a narrower float type.
  """
  shapes = input_shapes(model)
  if not getattr(model, "inputs", None):
    # A subclassed model: its call is code, not a config to rebuild.
    return None, (f"model {model.name!r} is subclassed (no config to clone "
                  "it from)")
  try:
    clone, own, cloned, mapped, kernels = _float64_clone(model, targets,
                                                         shapes, kit)
    ones = _all_ones(clone, shapes, 1)

    # Batch 1: the oneDNN batch-1 weight-gradient bug worked around in
    # _float32_runner concerns float32 kernels; float64 runs on Eigen.
    @tf.function(autograph=False)
    def grad():
      with tf.GradientTape() as tape:
        out = tf.nest.flatten(clone(ones, training=False))
        r = tf.add_n([tf.reduce_sum(o) for o in out])
      return r, _dense(tape.gradient(r, kernels))

    _check_float64(grad)
  except Exception as e:  # pylint: disable=broad-except
    # Anything a layer's get_config/from_config/call may raise: use float32.
    why = " ".join(str(e).split())
    why = why if len(why) <= 200 else why[:197] + "..."
    return None, f"{type(e).__name__}: {why}"

  step, keys = _round_step(model, kit, biases, mapped, own, cloned, grad,
                           kernels)

  def run(scale):
    r, s = step(tf.constant([float(scale.get(k, 1.0)) for k in keys],
                            tf.float64))
    return float(r.numpy()), {t.key: v.numpy() for t, v in zip(targets, s)}
  run.float64, run.reason = True, None
  return run, None


def _float32_runner(model, targets, reason: str, kit, biases="zero"):
  """As :func:`_float64_runner`, in float32 on ``model`` itself (on its
  float32 copy, synced at each run, if it computes in float16/bfloat16)."""
  copy = precision.float32_copy(model, compat.keras_of(model), None,
                                "synflow")
  if copy is not None:
    by_key = {t.key: t for t in kit.prunable_targets(copy.model)}
    inner = _float32_runner(copy.model, [by_key[t.key] for t in targets],
                            reason, kit, biases)

    def run_copy(scale):
      copy.sync()
      return inner(scale)
    run_copy.float64, run_copy.reason = False, reason
    return run_copy
  shape = input_shapes(model)
  # Two identical all-ones rows, R averaged over them: the same R and
  # gradient as one row, but TF 2.21's oneDNN CPU kernels corrupt the heap
  # on the weight gradient of a 1x1 stride-2 conv with few input channels
  # at batch size 1 (uxlfoundation/oneDNN#6035); batch 2 avoids it.
  ones = _all_ones(model, shape, 2)
  variables = [t.variable for t in targets]
  grad = []

  def run(scale):
    with state.linearized(model, lambda k, w: np.abs(w) / scale.get(k, 1.0),
                          biases=biases):
      if not grad:  # traced inside the linearized state: identity activations

        @tf.function
        def g():
          with tf.GradientTape() as tape:
            out = tf.nest.flatten(model(ones, training=False))
            r = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float64)) for o in out]
                         ) / 2.0
          return r, _dense(tape.gradient(r, variables))
        grad.append(g)
      r, gs = grad[0]()
      w = {t.key: np.abs(t.variable.numpy().astype(np.float64))
           for t in targets}
      gs = [np.zeros(v.shape) if g is None else g.numpy().astype(np.float64)
            for g, v in zip(gs, variables)]
    with np.errstate(over="ignore", invalid="ignore"):  # checked by caller
      return float(r.numpy()), {t.key: np.abs(w[t.key] * g)
                                for t, g in zip(targets, gs)}
  run.float64, run.reason = False, reason
  return run


def _is_chain(layer) -> bool:
  """Whether every input-output path crosses every sublayer of ``layer`` once.

  True for Sequential models (of chains) and functional models with one
  input and output whose every layer is called once on one tensor and every
  tensor feeds at most one layer; False for branches, merges, shared layers
  and subclassed models (whose structure is unknown). A plain layer counts
  as one step; a recurrent layer (a path crosses ``U`` once per time step)
  or a composite one (attention: query and key are off the value path) does
  not. Either Keras (the layer's own).
  """
  K = compat.keras_of(layer)
  if isinstance(layer, K.layers.Wrapper):
    return _is_chain(layer.layer)
  if not isinstance(layer, K.Model):
    table = targets_lib.table_for(layer)
    return not isinstance(layer, K.layers.RNN) and all(
        t.layer is layer for t in layer_targets(layer, table).values())
  if isinstance(layer, K.Sequential):
    return all(_is_chain(l) for l in layer.layers)
  if not compat.is_graph_network(layer):
    return False
  if len(layer.inputs) != 1 or len(layer.outputs) != 1:
    return False
  called, fed = set(), set()
  for nodes in compat.nodes_by_depth(layer).values():
    for node in nodes:
      if isinstance(compat.node_layer(node), K.layers.InputLayer):
        continue
      inputs = compat.node_input_tensors(node)
      if id(compat.node_layer(node)) in called or len(inputs) != 1:
        return False
      called.add(id(compat.node_layer(node)))
      if id(inputs[0]) in fed:
        return False
      fed.add(id(inputs[0]))
  return all(_is_chain(l) for l in layer.layers)
