"""Argument checks of :func:`prune`, run before anything is traced or changed.

Each check raises ValueError/TypeError naming the argument and the fix, or
warns where the input is legal but probably not what the user meant.
"""

import math
import numbers
import warnings

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import tf
from sbp_tf.pruning import conventions
from sbp_tf.pruning import kit as kit_lib
from sbp_tf.pruning import rescale as rescale_lib
from sbp_tf.pruning import saliency, steps


def check_int(name, v, lo=1):
  if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
    raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}. Fix: pass "
                     f"e.g. {name}={lo}.")


def _static_shape(model, attr):
  try:
    shape = getattr(model, attr)
  except (AttributeError, ValueError, RuntimeError):  # subclassed / unbuilt
    return None
  if (not isinstance(shape, tuple) or
      any(isinstance(d, (tuple, list, dict)) for d in shape)):
    return None  # several inputs / outputs: not checked
  return shape


def first_batch(data, num_batches):
  """``(x, y)`` of the first batch; warns when ``num_batches`` exceeds the
  data and raises for an empty dataset."""
  if isinstance(data, tf.data.Dataset):
    n = int(data.cardinality())
    if n > 0 and num_batches > n:  # n == 0: the empty error below
      warnings.warn(f"num_batches={num_batches} but the dataset holds only {n} "
                    f"batch(es); the saliency uses {n}. Fix: pass "
                    f"num_batches<={n} or more data.")
    first = next(iter(data.take(1)), None)
    if first is None:
      raise ValueError("The dataset is empty. Fix: pass a dataset of (x, y) "
                       "batches.")
    return first[0], first[1]
  if num_batches > 1:
    warnings.warn(f"num_batches={num_batches} but data=(x, y) is one batch; "
                  "the saliency uses 1. Fix: pass a batched tf.data.Dataset "
                  "for several batches.")
  check_lengths(data[0], data[1])
  return data[0], data[1]


def check_lengths(x, y) -> None:
  """``x`` and ``y`` (arrays or structures of arrays) hold the same number
  of examples: one leading dimension across all of them."""
  def lengths(v):
    return [int(np.shape(a)[0]) for a in tf.nest.flatten(v)
            if len(np.shape(a))]
  nx, ny = lengths(x), lengths(y)
  if len(set(nx + ny)) > 1:
    raise ValueError(
        f"x and y have different lengths: {'/'.join(map(str, nx))} "
        f"example(s) but {'/'.join(map(str, ny))} label(s). Fix: pass one "
        "label per example (e.g. x[:n], y[:n]).")


def _model_inputs(model):
  """``[(name, KerasTensor)]`` of the model's inputs in ``tf.nest.flatten``
  order (dict keys for dict inputs); None where unknown (subclassed)."""
  try:
    struct, flat = model.input, list(model.inputs or ())
  except (AttributeError, ValueError, RuntimeError):
    return None
  if not flat or len(tf.nest.flatten(struct)) != len(flat):
    return None
  names = (sorted(struct) if isinstance(struct, dict)
           else list(getattr(model, "input_names", None) or
                     [f"input_{i}" for i in range(len(flat))]))
  return list(zip(names, flat))


def _matched_inputs(model, x):
  """``[(name, array, KerasTensor)]`` pairing ``x`` with the model's inputs
  by key (dict) or position; [] where the structures differ (the model
  reports that when called) or the inputs are unknown."""
  inputs = _model_inputs(model)
  if inputs is None:
    return []
  if isinstance(x, dict):
    by_key = dict(inputs)
    return [(k, v, by_key[k]) for k, v in x.items() if k in by_key]
  xs = tf.nest.flatten(x)
  if len(xs) != len(inputs):
    return []
  return [(n, v, t) for (n, t), v in zip(inputs, xs)]


def check_inputs(model, x, batched_dataset: bool) -> None:
  """Every input array has its model input's shape (and is batched); warns
  for uint8 images in 0-255. Inputs are paired by key (dict) or position;
  what cannot be paired is left to the model."""
  pairs = _matched_inputs(model, x)
  if not pairs and len(tf.nest.flatten(x)) == 1:  # unknown inputs: dtype only
    _warn_uint8(tf.nest.flatten(x)[0], "")
  several = len(pairs) > 1
  for name, v, t in pairs:
    got, want = tuple(np.shape(v)), tuple(t.shape[1:])
    where = f" for input {name!r}" if several else ""
    fits = lambda a, b: len(a) == len(b) and all(
        w is None or int(g) == int(w) for g, w in zip(a, b))
    if fits(got, want) and batched_dataset:
      raise ValueError(
          f"The dataset yields single examples of shape {got}{where}, not "
          f"batches (the model expects {(None,) + want}). Fix: batch it, e.g. "
          "data=ds.batch(128).")
    if not fits(got[1:], want):
      raise ValueError(
          f"The data's images have shape {got[1:]} (batch {got}){where} but "
          f"the model expects {want} (input_shape {(None,) + want}). Fix: "
          "reshape/resize the inputs or build the model for this input "
          "shape.")
    if "int" not in str(t.dtype):  # token ids: 0-255 values are fine
      _warn_uint8(v, where)


def _warn_uint8(v, where) -> None:
  xv = np.asarray(v)
  if xv.dtype == np.uint8 and xv.size and int(xv.max()) > 1:
    warnings.warn(f"The images{where} are uint8 in 0-255; the saliency sees "
                  "them unscaled. Fix: pass float images, e.g. x / 255.0.")


def check_labels(model, y) -> None:
  """Labels fit the default loss (sparse CE on one output): integer class
  indices in ``[0, classes)``; float labels holding integers warn. Targets
  that are not one array (several outputs) are the loss's business."""
  ys = tf.nest.flatten(y)
  if len(ys) != 1:
    return
  yv = np.asarray(ys[0])
  outs = list(getattr(model, "outputs", None) or ())
  out_shape = (tuple(outs[0].shape) if len(outs) == 1
               else _static_shape(model, "output_shape"))
  classes = (int(out_shape[-1]) if out_shape is not None and len(out_shape) > 1
             and out_shape[-1] is not None else None)
  if yv.ndim >= 2 and yv.shape[-1] > 1:
    raise ValueError(
        f"The labels have shape {yv.shape} (one-hot?) but the default loss is "
        "sparse categorical cross-entropy on integer labels. Fix: pass "
        "integer labels (np.argmax(y, -1)) or loss=CategoricalCrossentropy("
        "from_logits=True).")
  if yv.size == 0:
    return
  if np.issubdtype(yv.dtype, np.floating):
    if not np.all(np.isfinite(yv)) or np.any(yv != np.round(yv)):
      raise ValueError(
          "The labels are floats that are not class indices (non-integer "
          "values) while the default loss expects integer labels. Fix: pass "
          "integer class labels, or a loss= for your targets.")
    warnings.warn("The labels are floats; the default loss casts them to "
                  "integer class indices. Fix: pass integer labels "
                  "(y.astype('int64')).")
  elif not np.issubdtype(yv.dtype, np.integer):
    return
  lo, hi = int(np.min(yv)), int(np.max(yv))
  if lo < 0 or (classes is not None and hi >= classes):
    raise ValueError(
        f"Labels out of range: found {lo}..{hi}, the model has "
        f"{classes} output classes (labels must be in [0, {classes})). Fix: "
        "map the labels to 0..num_classes-1 or build the model with more "
        "classes.")


def check_data(model, data, loss, num_batches, loss_weights=None) -> None:
  """Checks the first batch against the model before anything is traced.

  Raises ValueError for an unbatched Dataset, inputs of the wrong shape, a
  loss that does not fit the outputs (:func:`saliency.resolve_loss`: e.g.
  several outputs and no loss), targets that do not match the outputs and
  (default loss only) one-hot or out-of-range labels; warns for float
  labels, uint8 0-255 images and ``num_batches`` beyond the data.
  """
  plan = saliency.resolve_loss(model, loss, loss_weights)
  x, y = first_batch(data, num_batches)
  check_inputs(model, x, isinstance(data, tf.data.Dataset))
  if plan.structured is None:
    plan.flat_targets(y)  # raises on a structure the outputs do not match
  if loss is None:  # a custom loss: labels are the user's business
    check_labels(model, y)


def validate(model, method, sparsity, data, scope, num_batches, rescale,
             rounds, on_collapse, strategy, loss=None, method_options=None,
             loss_weights=None, kit=None, scoring_mode="training",
             count_rule="round"):
  """All of ``prune()``'s checks, for both Keras paths (``kit``, default
  tf_keras); returns ``(targets, method, mode)``."""
  kit = kit_lib.resolve(kit)
  kit.check_model(model, f"{kit.prefix}.prune")
  if not isinstance(model, compat.keras_of(model).Model):
    raise TypeError(f"model must be a Keras Model, got "
                    f"{type(model).__name__}. Fix: pass a built keras.Model.")
  targets = kit.prunable_targets(model)  # raises if not built
  if not targets:
    raise ValueError(f"Model {model.name!r} has no prunable weights (Dense/Conv "
                     "kernels). Fix: prune a model with Dense or Conv layers.")
  m = steps.resolve_method(method, **(method_options or {}))
  if (isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real)
      or not math.isfinite(sparsity) or not 0.0 <= sparsity < 1.0):
    raise ValueError(f"sparsity must be in [0, 1) (fraction of weights "
                     f"removed), got {sparsity!r}. Fix: pass e.g. 0.9.")
  if scope not in steps.SCOPES:
    raise ValueError(f"scope={scope!r} is not known. Fix: use one of "
                     f"{steps.SCOPES}.")
  check_int("num_batches", num_batches)
  if rounds is not None:
    check_int("rounds", rounds)
  conventions.check_scoring_mode(scoring_mode)
  conventions.check_count_rule(count_rule)
  if on_collapse not in steps.ON_COLLAPSE:
    raise ValueError(f"on_collapse={on_collapse!r} is not valid. Fix: use one "
                     f"of {steps.ON_COLLAPSE}.")
  mode = rescale_lib.normalize_mode(rescale)
  if m.needs_data:
    saliency.check_data(data)  # raises on None / label-less / empty tuple
    check_data(model, data, loss, num_batches, loss_weights)
  if strategy is not None:
    bad = [t.key for t in targets
           if not strategy.extended.variable_created_in_scope(t.variable)]
    if bad:
      raise ValueError(f"Weight {bad[0]!r} was not created under the given "
                       "strategy. Fix: build the model inside strategy.scope().")
  return targets, m, mode


