"""The saliency loss: which loss, weight and ``from_logits`` each output gets.

:func:`resolve_loss` turns the user's ``loss`` (None, a Keras loss or name,
a dict/list per output, or a callable over the output structure) and
``loss_weights`` into a :class:`LossPlan`: per output ``o`` a per-example
loss ``l_o`` and a weight ``w_o``, so that one batch's loss is
``sum_o w_o * mean_i l_o(f_o(x_i), y_o,i)``. A final softmax is detected,
so the default loss (sparse categorical cross-entropy) reads probabilities
there and logits elsewhere; a user's loss that contradicts the model's head
is warned about.

Usage::

    plan = resolve_loss(model, {"cls": "sparse_categorical_crossentropy",
                                "reg": "mse"}, loss_weights={"reg": 0.5})
    [o.name for o in plan.outputs]
"""

import dataclasses
import inspect
from typing import Callable, List, Mapping, Optional, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import keras, tf

_MULTI_OUTPUT_FIX = (
    "Fix: pass loss={{name: loss}} with one Keras loss per output (outputs "
    "{names}; e.g. loss={{{example}}}) and optionally loss_weights={{name: "
    "w}}, or a callable loss(y_true, y_pred) over the output structure.")


def default_loss(from_logits: bool = True, K=keras):
  """``SparseCategoricalCrossentropy(from_logits=True)`` (models output logits).

  ``from_logits=False`` for a model ending in a softmax (what
  :func:`resolve_loss` picks by itself when ``loss=None``). ``K``: the Keras
  module of the model (tf_keras by default, or Keras 3).
  """
  return K.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def _check_same_keras(loss, K) -> None:
  """Raises TypeError for a loss of the other Keras (the two never meet)."""
  family = compat.keras_family(loss)
  mine = "tf_keras" if K is keras else "keras3"
  if family is None or family == mine:
    return
  names = {"tf_keras": "tf_keras (Keras 2)", "keras3": "Keras 3"}
  fix = ("keras.losses.<Name>(...) from `import keras`" if mine == "keras3"
         else "tf.keras.losses.<Name>(...) after `import sbp_tf`")
  raise TypeError(f"loss is a {names[family]} loss but the model is a "
                  f"{names[mine]} model; the two Kerases never mix. Fix: pass "
                  f"{fix}.")


def per_example(loss, K=keras) -> Callable:
  """A callable ``(y, logits) -> per-example (or scalar mean) losses``
  (``K``: the model's Keras module)."""
  if loss is None:
    loss = default_loss(K=K)
  _check_same_keras(loss, K)
  if isinstance(loss, str):
    loss = K.losses.get(loss)
  if isinstance(loss, K.losses.Loss):
    cfg = dict(loss.get_config())
    # tf_keras: Reduction.NONE; Keras 3: reduction=None.
    reduction = getattr(K.losses, "Reduction", None)
    cfg["reduction"] = None if reduction is None else reduction.NONE
    return type(loss).from_config(cfg)
  if callable(loss):
    return loss
  raise TypeError(f"loss must be a keras Loss, a loss name or a callable, got "
                  f"{type(loss).__name__}. Fix: pass e.g. "
                  "keras.losses.SparseCategoricalCrossentropy(from_logits=True).")


# --- Which loss on which output -------------------------------------------


def _activation_name(fn, K=keras) -> Optional[str]:
  if not callable(fn):
    return None
  if fn is K.activations.softmax:
    return "softmax"
  name = getattr(fn, "__name__", None)
  return "softmax" if name == "softmax_v2" else name  # tf.nn.softmax


def output_activation(layer) -> Optional[str]:
  """The activation producing ``layer``'s output: ``'softmax'``,
  ``'sigmoid'``, ``'linear'``, ... or None where unknown.

  Sees through wrappers (tfmot, masking) and nested single-output models;
  a ``Softmax`` layer and ``tf.nn.softmax`` called on a Keras tensor count
  as softmax.
  """
  K = compat.keras_of(layer)
  for _ in range(64):  # nesting depth; a cycle is impossible but bounded
    if layer is None:
      return None
    if isinstance(layer, K.layers.Softmax):
      return "softmax"
    if isinstance(layer, K.layers.Wrapper):
      layer = layer.layer
      continue
    if isinstance(layer, K.Model):
      outs = model_outputs(layer)
      if len(outs) != 1:
        return None
      layer = outs[0][1]
      continue
    symbol = getattr(layer, "symbol", None)  # tf ops called on Keras tensors
    if symbol in ("nn.softmax", "math.softmax"):
      return "softmax"
    if symbol in ("nn.sigmoid", "math.sigmoid"):
      return "sigmoid"
    return _activation_name(getattr(layer, "activation", None), K)
  return None


def model_outputs(model) -> List[Tuple[str, object]]:
  """``(name, layer)`` per output, in ``tf.nest.flatten`` order of the
  model's output structure; ``[('output', None)]`` where unknown
  (subclassed). Names are the dict keys for dict outputs, else
  ``model.output_names`` (the producing layers' names)."""
  try:
    struct, layer_names = model.output, list(model.output_names or ())
  except (AttributeError, ValueError, RuntimeError):  # subclassed / unbuilt
    return [("output", None)]
  flat = tf.nest.flatten(struct)
  if len(layer_names) != len(flat):
    return [("output", None)]
  names = (sorted(struct) if isinstance(struct, Mapping) else layer_names)
  out = []
  K = compat.keras_of(model)
  for name, layer_name in zip(names, layer_names):
    if isinstance(model, K.Sequential):
      layer = model.layers[-1] if model.layers else None
    else:
      try:
        layer = model.get_layer(layer_name)
      except ValueError:
        layer = None
    out.append((str(name), layer))
  return out


def _is_loss_object(loss) -> bool:
  """A Keras loss object of either Keras."""
  return isinstance(loss, compat.keras_of(loss).losses.Loss)


def _from_logits(loss) -> Optional[bool]:
  """What ``loss`` assumes of its predictions (None: it has no such flag)."""
  if _is_loss_object(loss):
    try:
      value = loss.get_config().get("from_logits")
    except (NotImplementedError, TypeError, AttributeError):
      return None
    return None if value is None else bool(value)
  if callable(loss):
    try:
      p = inspect.signature(loss).parameters.get("from_logits")
    except (TypeError, ValueError):
      return None
    if p is not None and isinstance(p.default, bool):
      return p.default
  return None


def _label(loss) -> str:
  if _is_loss_object(loss):
    fl = _from_logits(loss)
    return type(loss).__name__ + ("" if fl is None else f"(from_logits={fl})")
  if isinstance(loss, str):
    return loss
  return getattr(loss, "__name__", type(loss).__name__)


def _is_keras_loss(loss) -> bool:
  """A Keras loss object, name or function (applied per output, as
  ``compile`` does), as opposed to a user's callable over the structure."""
  module = getattr(loss, "__module__", "") or ""
  return (isinstance(loss, str) or _is_loss_object(loss) or
          module.startswith(("tf_keras.", "keras.")))


@dataclasses.dataclass(frozen=True)
class OutputLoss:
  """The loss of one model output.

  Attributes:
    name: the output's name (dict key, else ``model.output_names``).
    fn: per-example loss ``(y, y_pred) -> [B]`` (None: no loss here).
    weight: ``w_o``.
    from_logits: what ``fn`` assumes (None: a loss without the flag).
    activation: the output's final activation (see
      :func:`output_activation`; None: unknown).
    label: e.g. ``"SparseCategoricalCrossentropy(from_logits=False)"``.
  """
  name: str
  fn: Optional[Callable]
  weight: float
  from_logits: Optional[bool]
  activation: Optional[str]
  label: str

  @property
  def probabilities(self) -> bool:
    """A softmax output read as probabilities (temperature needs care)."""
    return self.activation == "softmax" and self.from_logits is False


@dataclasses.dataclass(frozen=True)
class LossPlan:
  """The saliency loss of a model: one :class:`OutputLoss` per output, or one
  ``structured`` callable ``loss(y_true, y_pred)`` over all outputs."""
  names: Tuple[str, ...]
  outputs: Tuple[OutputLoss, ...]
  structured: Optional[Callable] = None
  notes: Tuple[str, ...] = ()

  @property
  def description(self) -> str:
    """Which loss each output gets, e.g. for a log line or a report."""
    if self.structured is not None:
      return (f"{_label(self.structured)}(y_true, y_pred) over the outputs "
              f"{list(self.names)}")
    single = len(self.outputs) == 1 and self.outputs[0].weight == 1.0
    parts = [o.label if single else
             f"{o.name}: {o.label if o.fn else 'no loss'} x {o.weight:g}"
             for o in self.outputs]
    return "; ".join(parts)

  @property
  def from_logits(self) -> dict:
    """Output name -> the ``from_logits`` its loss uses (None: no flag)."""
    return {o.name: o.from_logits for o in self.outputs}

  @property
  def probabilities(self) -> bool:
    return self.structured is None and any(
        o.probabilities for o in self.outputs)

  def flat_targets(self, y) -> list:
    """``y`` as one target per output (in :attr:`names` order).

    Raises:
      ValueError: the structure of ``y`` does not match the outputs.
    """
    n = len(self.names)
    if isinstance(y, Mapping):
      missing = [o.name for o in self.outputs
                 if o.fn is not None and o.name not in y]
      if missing:
        raise ValueError(
            f"The targets are a dict with keys {sorted(y)}, but output(s) "
            f"{missing} have a loss and no target. Fix: key y by output "
            f"name: {list(self.names)}.")
      return [y.get(name) for name in self.names]
    if isinstance(y, (tuple, list)) and len(y) == n and (
        n > 1 or np.ndim(y[0]) >= 1):
      return list(y)
    if n == 1:
      return [y]
    got = (f"a {type(y).__name__} of {len(y)}" if isinstance(y, (tuple, list))
           else f"one array of shape {tuple(np.shape(y))}")
    raise ValueError(
        f"The data's targets are {got} but the model has {n} outputs "
        f"{list(self.names)}. Fix: pass y as a tuple of {n} target arrays in "
        "output order, or a dict keyed by output name.")

  def flat_outputs(self, preds) -> list:
    """The model's outputs in :attr:`names` order."""
    if isinstance(preds, Mapping) and set(preds) == set(self.names):
      return [preds[name] for name in self.names]
    flat = tf.nest.flatten(preds)
    if len(flat) != len(self.names):
      raise ValueError(
          f"The model returned {len(flat)} outputs but the saliency loss was "
          f"set up for {len(self.names)} ({list(self.names)}; a subclassed "
          "model records no outputs). Fix: pass loss=[one loss per output] "
          "in call order, or a callable loss(y_true, y_pred) over the "
          "outputs.")
    return flat


def _per_output(value, names, what):
  """``value`` (dict by name, list by position, or one for all) per output."""
  if isinstance(value, Mapping):
    unknown = sorted(set(value) - set(names))
    if unknown:
      raise ValueError(f"{what} names output(s) {unknown} the model does not "
                       f"have; its outputs are {list(names)}. Fix: key {what} "
                       "by output name.")
    return [value.get(n) for n in names]
  if isinstance(value, (list, tuple)):
    if len(value) != len(names):
      raise ValueError(f"{what} has {len(value)} entries but the model has "
                       f"{len(names)} outputs {list(names)}. Fix: pass one "
                       "per output, or a dict keyed by output name.")
    return list(value)
  return [value] * len(names)


def _weights(loss_weights, names) -> List[float]:
  if loss_weights is None:
    return [1.0] * len(names)
  out = []
  for name, w in zip(names, _per_output(loss_weights, names, "loss_weights")):
    w = 1.0 if w is None else w
    if (isinstance(w, bool) or not isinstance(w, (int, float, np.number))
        or not np.isfinite(w) or w < 0):
      raise ValueError(f"loss_weights for output {name!r} is {w!r}; weights "
                       "are finite numbers >= 0. Fix: e.g. loss_weights="
                       f"{{{name!r}: 1.0}}.")
    out.append(float(w))
  return out


def resolve_loss(model, loss=None, loss_weights=None) -> LossPlan:
  """The saliency loss of ``model`` as a :class:`LossPlan`; warns nothing.

  * ``loss=None``: one output only; sparse categorical cross-entropy with
    ``from_logits = not softmax`` where a final softmax is detected
    (:func:`output_activation`).
  * A Keras loss (object, name or ``keras.losses`` function): applied to
    every output, as ``compile`` does; its own ``from_logits`` is used.
  * A dict (by output name) or list (by position) of such losses: one per
    output; outputs left out get no loss.
  * Any other callable: called as ``loss(y_true, y_pred)`` on the data's
    targets and the model's output structure (one output: that tensor),
    returning per-example losses ``[B]`` or their mean.
  * ``loss_weights`` (dict or list): ``w_o`` of each output's term.

  Contradictions (a softmax read as logits, logits read as probabilities)
  are returned in ``notes`` for the caller to warn about once.

  Raises:
    ValueError: several outputs and no loss; losses or weights that name
      unknown outputs or miscount them; no output with a loss.
    TypeError: a loss that is not a loss.
  """
  K = compat.keras_of(model)
  outs = model_outputs(model)
  names = tuple(n for n, _ in outs)
  if isinstance(loss, (list, tuple)) and outs == [("output", None)]:
    names = tuple(f"output_{i}" for i in range(len(loss)))  # subclassed
    outs = [(n, None) for n in names]
  if loss is None and len(outs) > 1:
    example = ", ".join(f"{n!r}: ..." for n in names)
    raise ValueError(
        f"Model {model.name!r} has {len(outs)} outputs {list(names)}, but the "
        "default saliency loss (sparse softmax cross-entropy) fits one "
        "logits output. " + _MULTI_OUTPUT_FIX.format(names=list(names),
                                                     example=example))
  if (callable(loss) and not _is_keras_loss(loss) and len(outs) > 1):
    if loss_weights is not None:
      raise ValueError("loss_weights weigh per-output losses but loss is one "
                       "callable over all outputs. Fix: weigh the terms "
                       "inside the callable, or pass loss={name: loss}.")
    return LossPlan(names=names, outputs=(), structured=loss)
  specs = _per_output(loss, names, "loss")
  weights = _weights(loss_weights, names)
  outputs, notes = [], []
  for (name, layer), spec, w in zip(outs, specs, weights):
    act = output_activation(layer)
    if loss is None:  # the default: read the head the model has
      fl = act != "softmax"
      spec = default_loss(from_logits=fl, K=K)
      label = (f"SparseCategoricalCrossentropy(from_logits={fl}) (default"
               + ("; softmax output detected)" if not fl else ")"))
    elif spec is None:
      outputs.append(OutputLoss(name, None, w, None, act, "no loss"))
      continue
    else:
      if isinstance(spec, str):
        spec = K.losses.get(spec)
      fl, label = _from_logits(spec), _label(spec)
      if act == "softmax" and fl is True:
        notes.append(
            f"Output {name!r} ends in a softmax (probabilities) but its loss "
            f"{label} says from_logits=True, so the saliency reads "
            "probabilities as logits. Fix: pass the loss with "
            "from_logits=False, or remove the final softmax.")
      elif act == "linear" and fl is False:
        notes.append(
            f"Output {name!r} is linear (logits) but its loss {label} says "
            "from_logits=False, so the saliency reads logits as "
            "probabilities. Fix: pass the loss with from_logits=True.")
    outputs.append(OutputLoss(name, per_example(spec, K), w, fl, act, label))
  if not any(o.fn is not None for o in outputs):
    raise ValueError(f"loss={loss!r} gives no output of model {model.name!r} "
                     f"a loss (outputs {list(names)}). Fix: name at least "
                     "one output in loss.")
  return LossPlan(names=names, outputs=tuple(outputs), notes=tuple(notes))


# --- Data -------------------------------------------------------------------


