"""Saving, restoring and temporarily neutralising a model's weights.

Pruning must leave a model exactly as it found it apart from the pruned
(and, on request, rescaled) kernels: :func:`snapshot`/:func:`restore` keep
bit-exact copies of every variable (BN moving statistics included).
:func:`linearized` is the state SynFlow and the connectivity check score in:
kernels replaced, every bias 0, batch norm the identity (gamma 1, beta 0,
moving mean 0, moving variance 1, used in inference mode), other weights
``|w|``, and every layer in its linear form (:func:`linearize_activations`:
activations and clipping activation layers the identity, gates and
attention softmax at their pass-through values, recurrent layers a linear
recurrence, LayerNorm the identity, embeddings the sum of their rows), so the network computes ``prod |W|``
applied to its input whatever its nonlinearity (a saturating tanh or a
ReLU6 would otherwise shrink or clip the signal and SynFlow's gradients
layer by layer). Layers of no known form run as they are, with a warning.
"""

import contextlib
import functools
import warnings
from typing import Callable, Dict, List, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf import layers as sbp_layers
from sbp_tf.compat import keras, tf
from sbp_tf.pruning.targets import prunable_targets


def unique(variables) -> List:
  """``variables`` without repeats (shared ones once), in order."""
  out, seen = [], set()
  for v in variables:
    if id(v) not in seen:
      seen.add(id(v))
      out.append(v)
  return out


def is_floating(variable) -> bool:
  """Whether ``variable`` (of either Keras) holds floating-point values."""
  dtype = variable.dtype
  return bool(getattr(dtype, "is_floating", False)) or "float" in str(dtype)


def unique_weights(model) -> List:
  """The variables of ``model`` (trainable and not), each once, in order."""
  return unique(model.weights)


def snapshot_of(variables) -> List[Tuple[object, np.ndarray]]:
  """``(variable, value)`` of each variable (any Keras' variables).

  ``v.numpy()`` is already a host array of its own: later writes to the
  variable (assign, assign_add, optimizer steps) do not reach it, nor do
  writes to it reach the variable (both tested), so no second copy is made.
  """
  return [(v, v.numpy()) for v in variables]


def snapshot(model) -> List[Tuple[object, np.ndarray]]:
  """The values of all variables of ``model`` (trainable and not; on Keras 3
  also its seed generators' states), either Keras."""
  return snapshot_of(unique(model.variables))


@functools.lru_cache(maxsize=None)
def _is_keras3_variable(cls) -> bool:
  return compat.keras_family(cls) == "keras3"


def assign(variable, value) -> None:
  """``variable <- value`` (same shape and dtype), either Keras.

  A Keras 3 variable is written through the ``tf.Variable`` behind it
  (``variable.value`` outside an autocast scope): the same write without
  Keras 3's per-call conversion and checks, which cost 0.08 against 0.05 ms
  an assign, and pruning assigns every variable of a model more than once.
  """
  raw = (getattr(variable, "value", None)
         if _is_keras3_variable(type(variable)) else None)
  (raw if isinstance(raw, tf.Variable) else variable).assign(value)


def restore(snap) -> None:
  """Writes back the values of a :func:`snapshot` (bit-exact)."""
  for v, value in snap:
    assign(v, value)


def _sublayers(model) -> List:
  """Every layer nested in ``model`` (not itself), each once."""
  return compat.flatten_layers(model, include_self=False)


def _batch_norm_roles(model) -> Dict[int, float]:
  roles = {}
  bn = compat.keras_of(model).layers.BatchNormalization
  for m in _sublayers(model):
    if isinstance(m, bn):
      for attr, val in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0),
                        ("moving_variance", 1.0)):
        v = getattr(m, attr, None)
        if v is not None:
          roles[id(v)] = val
  return roles


_L = keras.layers


def _identity(layer, inputs, *args, **kwargs):
  """A normalization or clipping activation layer: ``x -> x``."""
  return inputs


def _uniform_softmax(layer, inputs, *args, **kwargs):
  """A ``Softmax`` layer: uniform (:func:`_uniform`); inside the
  connectivity check's :func:`reachability` a head is the identity."""
  if _PROBE["head_softmax_identity"] and id(layer) not in _PROBE["attention"]:
    return inputs  # connectivity: a head's probabilities follow its logits
  return _uniform(layer, inputs)


def _uniform(layer, inputs):
  """Softmax at equal logits: ``p = 1/T`` over the ``T`` entries of its
  axes (attention: every value weighted equally), with the backward of
  :func:`pass_through` so the logits' kernels (attention query/key) keep a
  gradient: each gets half the flow of the value path, on top of it, so
  the flow doubles at every attention layer (scores of the layers before
  ``k`` attention layers are inflated by up to ``2^k``)."""
  axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
  shape = tf.shape(inputs)
  t = tf.cast(tf.reduce_prod(tf.gather(shape, [a % len(inputs.shape)
                                               for a in axes])), inputs.dtype)
  return pass_through(inputs) / t


def _half_flow(flow, value):
  """``flow / (2 value)`` where ``value > 0``, else 0: the derivative that
  makes ``value * d/dvalue`` carry half of ``flow`` (conserved)."""
  ok = value > 0
  return tf.where(ok, flow / (2.0 * tf.where(ok, value, tf.ones_like(value))),
                  tf.zeros_like(flow))


@tf.custom_gradient
def pass_through(logits):
  """``1`` in value; backward ``dR/dlogit = dR/dout / (2 logit)``.

  The uniform softmax's surrogate: ``sum logit dR/dlogit`` is half the flow
  through the attention probabilities, so the query and key kernels each
  get half of it. A custom gradient: ``1 + (g - stop_gradient(g))`` is
  reassociated by Grappler to ``(1 + g) - g``, 0 for ``g > 2^53``.
  """
  def grad(dy):
    return _half_flow(dy, logits)
  return tf.ones_like(logits), grad


@tf.custom_gradient
def gated(x, gate):
  """``x * gate`` with the gate at its pass-through value 1: value ``x``
  (broadcast to the product's shape).

  Backward, the flow through the product (``x dR/dout``) is split in half
  between the signal and the gate, each gate entry passing its half on in
  proportion to what feeds it, so SynFlow's conservation holds (per-layer
  score sums stay equal along a chain; tested on EfficientNet-B0). A plain
  ``x * 1`` leaves the gate's kernels without gradient; ``d(x g)/dg = x``
  adds the whole flow again at every gate (2^16 on EfficientNet-B0)::

      dR/dx = dR/dout / 2,   dR/dg = sum_broadcast(x dR/dout) / (2 g)
  """
  out = x * tf.ones_like(gate)

  def grad(dy):
    _, gaxes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(out),
                                                s1=tf.shape(gate))
    flow = tf.reshape(tf.reduce_sum(dy * x, axis=gaxes), tf.shape(gate))
    xaxes, _ = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(x),
                                                s1=tf.shape(out))
    dx = tf.reshape(tf.reduce_sum(0.5 * dy, axis=xaxes), tf.shape(x))
    return dx, _half_flow(flow, gate)
  return out, grad


def _gated_product(layer, inputs, *args, **kwargs):
  """``Multiply([x_1..x_n]) -> gated(... gated(x_s, x_j) ...)``.

  ``x_s`` (the signal) is the first input of the largest static size; every
  other input is a gate (a squeeze-excite gate ``(1, 1, C)``, the second
  factor of ``x * sigmoid(g)`` or hard_swish), set to its pass-through
  value 1 (:func:`gated`), so the product never squares the signal and a
  fully pruned gate does not disconnect the network (sigmoid(0) = 1/2
  passes the signal in the real one).
  """
  xs = list(inputs)
  size = [-1 if x.shape.num_elements() is None else x.shape.num_elements()
          for x in xs]
  s = size.index(max(size))
  out = xs[s]
  for j, g in enumerate(xs):
    if j != s:
      out = gated(out, g)
  return out


_PROBE = {"input_scale": 1.0, "head_softmax_identity": False,
          "attention": frozenset()}


@contextlib.contextmanager
def reachability(model):
  """Context for the connectivity check's passes: a ``Softmax`` layer that is
  not an attention's is the identity (a head's probabilities depend on the
  input exactly where its logits do; the uniform form SynFlow uses would
  make them a constant), attention softmaxes stay uniform (a pruned
  query/key leaves the values' path, as in the real network)."""
  attention = frozenset(
      id(getattr(l, "_softmax", None)) for l in compat.flatten_layers(model)
      if type(l).__name__ == "MultiHeadAttention")
  _PROBE.update(head_softmax_identity=True, attention=attention)
  try:
    yield
  finally:
    _PROBE.update(head_softmax_identity=False, attention=frozenset())


@contextlib.contextmanager
def zero_input():
  """Context: integer inputs count as absent in the linearized pass (every
  ``Embedding`` feeds 0), as a float input of zeros does; the connectivity
  check's second pass, which measures what the outputs hold without the
  input (weights that add a constant, e.g. a custom position embedding)."""
  _PROBE["input_scale"] = 0.0
  try:
    yield
  finally:
    _PROBE["input_scale"] = 1.0


def _all_tokens(layer, inputs, *args, **kwargs):
  """An ``Embedding`` at the all-ones input of its one-hot form.

  A lookup is the linear map ``onehot(ids) @ E``; the all-ones input of
  that map puts a 1 on every token id, so every position receives
  ``sum_v E[v]`` whatever the ids::

      out[..., :] = s * sum_v E[v, :]     (s = 1; 0 inside zero_input())

  so every row of ``E`` lies on a path (SynFlow scores all of them, the
  connectivity check reaches the output through any kept row), not only the
  row of the probe's token id.
  """
  e = tf.convert_to_tensor(layer.embeddings)
  total = tf.reduce_sum(e, axis=0) * tf.cast(_PROBE["input_scale"], e.dtype)
  return tf.ones(tf.concat([tf.shape(inputs), [1]], 0), e.dtype) * total


def _linear_recurrence(layer, inputs, *args, **kwargs):
  """A recurrent layer with every activation the identity and its gates'
  products replaced by the mean of the factors' pre-activations::

      z_t = x_t W + h_{t-1} U,   h_t = (1/n) sum_k z_t[k],   h_0 = 0

  ``W``, ``U`` the cell's ``kernel``/``recurrent_kernel`` of ``n`` blocks of
  ``units`` columns (LSTM 4, GRU 3, SimpleRNN 1): linear and nonnegative,
  and every column of both kernels is on a path. Honours
  ``go_backwards``, ``return_sequences`` and ``return_state``; masks and
  initial states are ignored.
  """
  cell = layer.cell
  w, u, units = cell.kernel, cell.recurrent_kernel, int(cell.units)
  n = int(w.shape[-1]) // units
  x = inputs if not getattr(layer, "time_major", False) else tf.transpose(
      inputs, [1, 0, 2])
  if layer.go_backwards:
    x = tf.reverse(x, [1])
  zx = tf.transpose(tf.einsum("btf,fk->btk", x, tf.cast(w, x.dtype)),
                    [1, 0, 2])  # time major for scan

  def step(h, z):
    z = z + tf.matmul(h, tf.cast(u, h.dtype))
    return tf.reduce_mean(tf.reshape(z, [-1, n, units]), axis=1)

  hs = tf.scan(step, zx, initializer=tf.zeros_like(zx[0, :, :units]))
  out = tf.transpose(hs, [1, 0, 2]) if layer.return_sequences else hs[-1]
  if layer.return_state:
    states = tf.nest.flatten(cell.state_size)
    return [out] + [hs[-1]] * len(states)
  return out


def _recurrence_or_none(layer):
  cell = getattr(layer, "cell", None)
  if all(hasattr(cell, a) for a in ("kernel", "recurrent_kernel", "units")):
    return _linear_recurrence
  return None


# Layer class names -> their linearized ``call(layer, inputs, *args,
# **kwargs)``, by name so that both Keras paths read the one table
# (:func:`linear_tables`).
LINEAR_CALL_NAMES = (
    (("ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "PReLU", "Activation",
      "LayerNormalization", "GroupNormalization", "UnitNormalization",
      "Normalization", "Rescaling"), _identity),
    (("Softmax",), _uniform_softmax),
    (("Multiply",), _gated_product),
    (("Embedding",), _all_tokens),
)
_USER_CALLS: List = []


def linearization_key() -> Tuple:
  """What :func:`linearize_activations` depends on besides the model: the
  registered linear forms (a cache of a linearized graph keys on it)."""
  return tuple((id(cls), id(call)) for cls, call in _USER_CALLS)
# Linear (or nonnegative piecewise-linear) as they are: no warning.
LINEAR_AS_IS_NAMES = (
    "InputLayer", "Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D",
    "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "EinsumDense",
    "BatchNormalization", "Flatten", "Reshape", "Permute",
    "RepeatVector", "Add", "Average", "Concatenate", "Maximum", "Minimum",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
    "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Masking",
    "Identity", "Wrapper", "MultiHeadAttention", "LSTMCell", "GRUCell",
    "SimpleRNNCell", "Sequential", "Bidirectional")


def linear_tables(layers_module):
  """``(calls, as_is)`` of one Keras: :data:`LINEAR_CALL_NAMES` and
  :data:`LINEAR_AS_IS_NAMES` resolved in ``layers_module``
  (``keras.layers`` of tf_keras or of Keras 3), plus ``StableScale`` of
  either Keras (shortcut + branch / sqrt(L): linear; both share
  :class:`sbp_tf.layers.StableScaleMath`)."""
  def classes(names):
    return tuple(getattr(layers_module, n) for n in names
                 if hasattr(layers_module, n))
  calls = [(classes(names), fn) for names, fn in LINEAR_CALL_NAMES]
  return calls, classes(LINEAR_AS_IS_NAMES) + (sbp_layers.StableScaleMath,)


_LINEAR_CALLS, _LINEAR_AS_IS = linear_tables(_L)


def register_linearization(layer_class: type, call=None) -> type:
  """Declares how SynFlow and the connectivity check linearize a layer.

  One registry for both Keras paths: a tf_keras layer class serves
  :mod:`sbp_tf.pruning`, a Keras 3 one (``import keras``) serves
  :mod:`sbp_tf.keras3` (TensorFlow backend).

  Args:
    layer_class: a ``keras.layers.Layer`` subclass (subclasses included),
      of tf_keras or of Keras 3.
    call: ``call(layer, inputs, *args, **kwargs) -> outputs``, the layer's
      forward pass in the linearized state (nonnegative in, nonnegative
      out, positively homogeneous), or None: the layer is linear as it is.

  Returns:
    ``layer_class``.
  """
  if not is_layer_class(layer_class):
    raise TypeError(f"register_linearization expects a keras.layers.Layer "
                    f"subclass (tf_keras or Keras 3), got {layer_class!r}.")
  _USER_CALLS.insert(0, (layer_class, call))
  return layer_class


def is_layer_class(c) -> bool:
  """A tf_keras Layer subclass, or a Keras 3 one (recognised by its base
  ``keras.src...Layer``, so this module never imports Keras 3)."""
  return isinstance(c, type) and (issubclass(c, _L.Layer) or any(
      b.__name__ == "Layer" and b.__module__.startswith("keras.")
      for b in c.__mro__))


def linear_call(layer, calls, as_is: Tuple[type, ...]):
  """``(known, call or None)`` for ``layer``: the user's
  :func:`register_linearization` entry (the latest first), else the first
  ``(classes, call)`` of ``calls`` it is an instance of, else whether it is
  linear as it is (an instance of ``as_is``). Each Keras path passes its own
  tables."""
  for cls, call in _USER_CALLS:
    if isinstance(layer, cls):
      return True, call
  for classes, call in calls:
    if isinstance(layer, classes):
      return True, call
  return isinstance(layer, as_is), None


def warn_not_linearized(unknown: List[str]) -> None:
  """One warning naming the layers that run as they are (``unknown``:
  ``"'name' (Class)"`` entries); nothing if there are none."""
  if not unknown:
    return
  warnings.warn(
      "linearization (synflow, connectivity check): no linear form for "
      + ", ".join(unknown[:8]) + (f" (+{len(unknown) - 8} more)"
                                  if len(unknown) > 8 else "")
      + "; they run as they are (their own nonlinearity stays in R and in "
      "the reachability pass). Fix: sbp_tf.pruning.register_linearization"
      "(LayerClass, call) or None if the layer is linear.", stacklevel=4)


def linear_call_of(layer, layers_module, calls, as_is):
  """:func:`linear_call`, and for a recurrent layer of ``layers_module``
  (``layers.RNN`` and its subclasses) :func:`_linear_recurrence` where it
  applies."""
  known, call = linear_call(layer, calls, as_is)
  if not known and isinstance(layer, layers_module.RNN):
    call = _recurrence_or_none(layer)
    return call is not None, call
  return known, call


@functools.lru_cache(maxsize=None)
def _tables_of(K):
  """:func:`linear_tables` of Keras module ``K`` (tf_keras or Keras 3)."""
  if K is keras:
    return _LINEAR_CALLS, _LINEAR_AS_IS
  return linear_tables(K.layers)


def _linear_call(layer):
  """``(known, call or None)`` for a ``layer`` of either Keras."""
  K = compat.keras_of(layer)
  calls, as_is = _tables_of(K)
  return linear_call_of(layer, K.layers, calls, as_is)


def _settable_activation(layer) -> bool:
  linear = compat.keras_of(layer).activations.linear
  act = getattr(layer, "activation", None)
  # LSTM/GRU expose ``activation`` as a read-only property of their cell.
  return (callable(act) and act is not linear and
          not isinstance(getattr(type(layer), "activation", None), property))


def _set(layer, name, value, undo) -> None:
  undo.append((layer, name, layer.__dict__.get(name, _MISSING)))
  object.__setattr__(layer, name, value)


_MISSING = object()


def _bind(call, layer):
  return lambda inputs, *args, **kwargs: call(layer, inputs, *args, **kwargs)


def _fuses_attention(layer) -> bool:
  """A Keras 3 ``MultiHeadAttention``: without dropout it computes one fused
  ``dot_product_attention`` and its ``Softmax`` layer never runs."""
  return (type(layer).__name__ == "MultiHeadAttention"
          and compat.keras_family(layer) == "keras3"
          and hasattr(type(layer), "_compute_attention"))


def _explicit_attention(layer):
  """``layer._compute_attention`` on its explicit path (the one that also
  returns the scores, through the layer's ``Softmax``), so the linearized
  attention is the uniform softmax's, as on tf_keras."""
  compute = type(layer)._compute_attention

  def explicit(query, key, value, attention_mask=None, training=None,
               return_attention_scores=False, **kwargs):
    del return_attention_scores  # the explicit path computes them
    return compute(layer, query, key, value, attention_mask, training, True,
                   **kwargs)
  return explicit


def linearize_activations(model) -> List[Tuple[object, str, object]]:
  """Puts every layer of ``model`` in its linearized form.

  * ``activation`` attributes (Dense, Conv, EinsumDense, custom layers)
    become the identity;
  * clipping and other activation layers (ReLU with ``max_value``, ReLU6,
    LeakyReLU, ELU, PReLU, ``Activation`` of any function, hard_sigmoid and
    hard_swish included) and normalization layers other than batch norm
    (LayerNormalization, GroupNormalization, UnitNormalization,
    Normalization) become ``x -> x``;
  * ``Multiply`` keeps its signal and sets its gates to the pass-through
    value 1 (:func:`_gated_product`); ``Softmax`` (attention included) is
    uniform (:func:`_uniform_softmax`; a Keras 3 attention takes its
    explicit, unfused path so that its ``Softmax`` runs);
  * LSTM/GRU/SimpleRNN run :func:`_linear_recurrence` (their activations
    cannot be reassigned);
  * :func:`register_linearization` adds or overrides a layer class.

  A layer of no known form (a Lambda, a custom layer, another recurrent
  cell, a subclassed model's own ops) runs as it is, and one warning names
  them all.

  Returns:
    Undo records for :func:`unlinearize` (functions traced while the
    linearized form is set keep it).
  """
  undo, unknown = [], []
  K = compat.keras_of(model)
  for layer in _sublayers(model):
    if _fuses_attention(layer):
      _set(layer, "_compute_attention", _explicit_attention(layer), undo)
    known, call = _linear_call(layer)
    if call is not None:
      _set(layer, "call", _bind(call, layer), undo)
    elif _settable_activation(layer):
      _set(layer, "activation", compat.keras_of(layer).activations.linear,
           undo)
    elif isinstance(layer, K.Model) and not (
        compat.is_graph_network(layer) or isinstance(layer, K.Sequential)):
      unknown.append(f"{layer.name!r} (subclassed model: the TensorFlow ops "
                     "in its call() are not linearized, its layers are)")
    elif not known and not _settable_activation(layer) and not isinstance(
        layer, K.Model):
      unknown.append(f"{layer.name!r} ({type(layer).__name__})")
  warn_not_linearized(unknown)
  return undo


def unlinearize(undo) -> None:
  """Undoes :func:`linearize_activations` (records in reverse order)."""
  for layer, name, old in reversed(undo):
    if old is _MISSING:
      layer.__dict__.pop(name, None)
    else:
      object.__setattr__(layer, name, old)


def linear_roles(model, biases: str = "zero"
                 ) -> List[Tuple[object, str, object]]:
  """``(variable, role, arg)`` for every variable :func:`linearized` sets:
  ``('kernel', key)`` (a prunable target), ``('const', c)`` (batch norm's
  identity values), ``('zero', None)`` (biases) or ``('abs', None)`` (other
  floating weights; with ``biases='abs'`` every floating non-kernel);
  integer variables are left out. Changes nothing."""
  targets = {id(t.variable): t.key for t in prunable_targets(model)}
  bn = _batch_norm_roles(model)
  out = []
  for v in unique(model.variables):
    if id(v) in targets:
      out.append((v, "kernel", targets[id(v)]))
    elif biases == "abs" and is_floating(v):
      out.append((v, "abs", None))
    elif id(v) in bn:
      out.append((v, "const", bn[id(v)]))
    elif v.name.split("/")[-1].startswith("bias"):
      out.append((v, "zero", None))
    elif is_floating(v):
      out.append((v, "abs", None))
  return out


def linear_values(model, kernel_fn: Callable[[str, np.ndarray], np.ndarray],
                  snap=None, biases: str = "zero"
                  ) -> List[Tuple[object, np.ndarray]]:
  """``(variable, value)`` for every variable :func:`linearized` sets.

  Kernels ``kernel_fn(key, W)`` (as it returns them, any float dtype);
  biases 0, batch norm the identity and other floating weights ``|w|``, in
  the variable's dtype (:func:`linear_roles`); integer variables are left
  out. With ``biases='abs'`` biases and batch norm's parameters and moving
  statistics are ``|value|`` too (the reference implementation's
  linearization, :mod:`conventions`). Reads ``model`` (or ``snap``, its
  :func:`snapshot`) and changes nothing.
  """
  values = {id(v): value for v, value in (snapshot(model) if snap is None
                                          else snap)}
  out = []
  for v, role, arg in linear_roles(model, biases):
    value = values[id(v)]
    if role == "kernel":
      new = kernel_fn(arg, value)
    elif role == "const":
      new = np.full_like(value, arg)
    elif role == "zero":
      new = np.zeros_like(value)
    else:
      new = np.abs(value)
    out.append((v, new))
  return out


@contextlib.contextmanager
def linearized(model, kernel_fn: Callable[[str, np.ndarray], np.ndarray],
               linear_activations: bool = True, biases: str = "zero"):
  """Context: kernels ``kernel_fn(key, W)``, biases 0, BN identity, rest |w|
  (``biases='abs'``: biases and BN ``|value|``, see :func:`linear_values`).

  With ``linear_activations`` every layer is in its linear form
  (:func:`linearize_activations`) inside the context (functions traced
  inside see it; functions traced before do not). Everything is restored
  bit-exactly on exit, also on error. Either Keras.
  """
  snap = snapshot(model)
  dtypes = {id(v): value.dtype for v, value in snap}
  swapped = []
  try:
    if linear_activations:
      swapped = linearize_activations(model)
    for v, new in linear_values(model, kernel_fn, snap, biases=biases):
      assign(v, np.asarray(new, dtype=dtypes[id(v)]))
    yield
  finally:
    unlinearize(swapped)
    restore(snap)
