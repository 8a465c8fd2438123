"""What masks do to a Keras 3 model at init: collapse, connectivity, critical
sparsity.

The checks of :mod:`sbp_tf.pruning.diagnostics`. Collapsed layers and the
critical sparsity of a score are framework-free and reused as they are;
connectivity propagates one all-ones input through the masked, linearized
model (kernels ``mask / kept fan-in count``, biases 0, batch norm the
identity, activations the identity): a nonnegative linear map, so an output
is reachable iff it is ``> 0``.

Usage::

    from sbp_tf.keras3 import diagnostics
    diagnostics.connectivity(model, masks).connected
    diagnostics.diagnose(model, masks, scores)["critical_sparsity"]
"""

from typing import Dict, Iterable, Mapping, Optional

import numpy as np

from sbp_tf.keras3 import state
from sbp_tf.keras3._runtime import keras
from sbp_tf.pruning import diagnostics as _k2_diag
from sbp_tf.pruning.masks import Masks

Connectivity = _k2_diag.Connectivity
critical_sparsity = _k2_diag.critical_sparsity
collapsed_layers = _k2_diag.collapsed_layers


def _fan_in_axes(key: str, ndim: int):
  if key.endswith("depthwise_kernel"):
    return tuple(range(ndim - 2))
  return tuple(range(ndim - 1))


def connectivity(model, masks: Optional[Mapping[str, np.ndarray]] = None
                 ) -> Connectivity:
  """Whether every output is reachable from the input (see module doc).

  Args:
    model: a built Keras 3 model with one input of fixed shape.
    masks: key -> 0/1 mask; default: the model's nonzero kernel entries.

  Raises:
    ValueError: the model has no single input of fixed shape.
  """
  inputs = getattr(model, "inputs", None) or []
  if len(inputs) != 1 or any(d is None for d in inputs[0].shape[1:]):
    raise ValueError(
        f"connectivity needs one input of fixed shape; model {model.name!r} "
        "has none (subclassed, several inputs or unknown sizes). Fix: build "
        "it with keras.Input(shape=<full shape>).")

  def kernel_fn(key, w):
    m = (np.asarray(masks[key]) if masks is not None and key in masks
         else (w != 0)).astype(w.dtype)
    return m / np.maximum(np.sum(m, axis=_fan_in_axes(key, m.ndim),
                                 keepdims=True), 1)

  shape = [1] + [int(d) for d in inputs[0].shape[1:]]
  with state.linearized(model, kernel_fn):
    out = model(keras.ops.ones(shape), training=False)
    out = np.asarray(keras.ops.convert_to_numpy(
        keras.tree.flatten(out)[0]), np.float64)
  reach = (out > 0) | ~np.isfinite(out)
  return Connectivity(connected=bool(np.all(reach)),
                      reachable_fraction=float(np.mean(reach)))


def diagnose(model, masks: Mapping[str, np.ndarray],
             scores: Optional[Mapping[str, np.ndarray]] = None,
             dense: Iterable[str] = ()) -> Dict:
  """``collapsed``, ``connected``/``reachable_fraction`` (None, with the
  reason in ``connectivity_unavailable``, without a fixed input shape) and,
  given ``scores``, ``critical_sparsity``/``critical_layer``."""
  m = masks if isinstance(masks, Masks) else Masks(masks)
  out = dict(collapsed=m.collapsed(), connected=None, reachable_fraction=None)
  try:
    conn = connectivity(model, m)
  except (ValueError, AttributeError) as e:
    out["connectivity_unavailable"] = f"{type(e).__name__}: {e}"
  else:
    out.update(connected=conn.connected,
               reachable_fraction=conn.reachable_fraction)
  if scores is not None:
    crit = critical_sparsity(scores, getattr(scores, "keep", "largest"),
                             set(dense))
    out.update(critical_sparsity=crit.sparsity, critical_layer=crit.bottleneck)
  return out


__all__ = ["Connectivity", "collapsed_layers", "connectivity",
           "critical_sparsity", "diagnose"]
