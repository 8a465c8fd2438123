"""Checks to run on masks before training: collapse, connectivity, critical sparsity.

* Layer collapse: a prunable layer whose mask keeps no weight.
* Connectivity: does every output still depend on the input? Every kernel
  is replaced by its mask divided by the unit's kept fan-in count (a
  non-negative averaging, so no overflow), biases by 0, batch norm by the
  identity, every layer's activation by the identity, other weights by
  ``|w|``; the all-ones input and then no input are propagated in inference
  mode. The network is then a nonnegative linear map of its input plus the
  constants of weights that add one (a custom position embedding), so an
  output is reachable iff it is larger with the input than without,
  whatever the model's activations (clipping activation layers, gates,
  softmax, LayerNorm, embeddings and recurrent layers as in
  :func:`state.linearize_activations`). A kernel whose kept weights all get
  no gradient of the input's part of the summed output lies on no
  input-output path: a *dead* branch, reported even where a skip connection
  keeps the outputs reachable.
* Critical sparsity of a score: the largest global sparsity whose top-k keeps
  at least one weight in every layer. With pool weights ranked by
  ``(-importance, index)`` and ``r_l`` the 0-based rank of the best weight of
  layer ``l``, layer ``l`` survives iff ``K_pool > r_l``, so
  ``s_l = 1 - (D + r_l + 1) / N`` (``D`` weights kept dense, ``N`` all) and
  ``s_crit = min_l s_l``.

Usage::

    collapsed_layers(masks)                  # ['dense_3/kernel']
    connectivity(model, masks).connected     # False
    critical_sparsity(result.scores).sparsity
"""

import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from sbp_tf import compat
from sbp_tf.compat import tf
from sbp_tf.pruning import kit as kit_lib
from sbp_tf.pruning import state


def zero_fraction(variables) -> float:
  """Measured sparsity: ``#{w = 0} / #w`` over ``variables`` (0 if empty).

  Shows that masks hold during training: it equals the masks' sparsity
  while every pruned weight stays exactly zero.
  """
  zeros = sum(int(np.sum(np.asarray(v) == 0)) for v in variables)
  total = sum(int(np.prod(np.shape(v))) for v in variables)
  return zeros / max(total, 1)


def collapsed_layers(masks: Mapping[str, np.ndarray]) -> List[str]:
  """Keys of masks that keep no weight."""
  return [k for k, m in masks.items()
          if np.size(m) and not np.any(np.asarray(m))]


@dataclasses.dataclass(frozen=True)
class Connectivity:
  """``connected``: every output reachable; ``reachable_fraction`` of
  outputs; ``dead``: keys of kernels with kept weights none of which lies on
  an input-output path (a dead branch, e.g. a residual branch cut off behind
  a live skip connection: the outputs stay reachable, the branch receives
  exactly zero gradient)."""
  connected: bool
  reachable_fraction: float
  dead: Tuple[str, ...] = ()


def _fan_in_axes(key: str, ndim: int):
  if key.endswith("depthwise_kernel"):
    return tuple(range(ndim - 2))
  return tuple(range(ndim - 1))


def ones_inputs(model, batch: int = 2) -> List:
  """``batch`` all-ones rows per input of a functional/Sequential ``model``
  (integer inputs: index 1). Two identical rows by default: TF 2.21's
  oneDNN CPU kernels corrupt the heap on the float32 weight gradient of a
  1x1 stride-2 conv at batch size 1 (uxlfoundation/oneDNN#6035).

  Raises:
    ValueError: the model records no inputs (a subclassed model has no
      static graph) or an input has no fixed shape; the message has the fix.
  """
  inputs = getattr(model, "inputs", None)
  if not inputs:
    raise ValueError(
        f"connectivity needs the model's static graph; model {model.name!r} "
        "records no inputs (a subclassed model). Fix: build it as a "
        "functional or Sequential model to get this check.")
  shapes = [list(x.shape[1:]) for x in inputs]
  if any(d is None for s in shapes for d in s):
    raise ValueError(f"connectivity needs inputs of fixed shape, got "
                     f"{[[None] + s for s in shapes]}. Fix: build the model "
                     "with a full input shape (sequence length included).")
  return [tf.ones([batch] + [int(d) for d in s], x.dtype)
          for s, x in zip(shapes, inputs)]


def _mask_average(masks):
  def kernel_fn(key, w):
    # In the kernel's own dtype: only "> 0" of the output matters, and a
    # float64 copy of every kernel cost ~0.1 s on ResNet-50-ImageNet.
    m = (np.asarray(masks[key]) if masks is not None and key in masks
         else (w != 0)).astype(w.dtype)
    kept = np.sum(m, axis=_fan_in_axes(key, m.ndim), keepdims=True)
    m /= np.maximum(kept, 1)
    return m
  return kernel_fn


def _zeros_like_inputs(ins) -> List:
  return [tf.zeros_like(x) for x in ins]


def _pass(model, ins, targets):
  """``(outputs, dR/dW)`` of one linearized pass (``R`` the summed outputs,
  in float64)."""
  with tf.GradientTape() as tape:
    out = model(ins if len(ins) > 1 else ins[0], training=False)
    out = [tf.cast(o, tf.float64) for o in tf.nest.flatten(out)]
    r = tf.add_n([tf.reduce_sum(o) for o in out])
  grads = tape.gradient(r, [t.variable for t in targets])
  grads = [np.zeros(t.variable.shape) if g is None
           else np.asarray(tf.convert_to_tensor(g), np.float64)
           for t, g in zip(targets, grads)]
  return np.concatenate([o.numpy().ravel() for o in out]), grads


def _depends(with_input, without, rtol: float = 1e-9):
  """``with_input - without > rtol * with_input``: the part carried by the
  input (nonnegative linear maps plus constants), robust to rounding."""
  return (with_input - without) > rtol * np.abs(with_input)


def connectivity(model, masks: Optional[Mapping[str, np.ndarray]] = None,
                 *, kit=None) -> Connectivity:
  """Propagates the input through the masked, linearized model (module doc).

  In the linearized state the network is a nonnegative linear map of its
  input plus what weights that add a constant contribute (a custom
  layer's position embedding, an offset: weights the engine cannot tell
  from a scale, so they stay ``|w|``). Two passes separate them: one with
  the all-ones input, one without it (float inputs 0, every embedding 0;
  :func:`state.zero_input`). Output ``o`` is reachable iff
  ``o(1) - o(0) > 0``, and a kept weight lies on an input-output path iff
  ``w * (dR(1)/dw - dR(0)/dw) > 0`` for ``R`` the sum of the outputs; a
  kernel with kept weights none of which does is ``dead``. Gates
  (squeeze-excite ``Multiply``, attention softmax) are at their
  pass-through value (:func:`state.linearize_activations`), so a fully
  pruned gate does not disconnect, as in the real network; a softmax head
  follows its logits (:func:`state.reachability`); an embedding feeds the
  sum of its rows (every token id), so any kept row connects.

  Args:
    model: a built functional or Sequential Keras model (several inputs and
      outputs allowed) with fixed input shapes.
    masks: key -> 0/1 mask; default: the model's nonzero kernel entries.
    kit: the Keras path's hooks (:mod:`sbp_tf.pruning.kit`); default
      tf_keras.

  Returns:
    :class:`Connectivity` over all outputs, flattened.

  Raises:
    ValueError: no static graph or no fixed input shape (see
      :func:`ones_inputs`).
  """
  kit = kit_lib.resolve(kit)
  ins = ones_inputs(model)
  targets = kit.prunable_targets(model)
  # Fused batch norm (Keras 3): one eager op a layer instead of several.
  with state.linearized(model, _mask_average(masks)), \
      state.reachability(model), compat.fused_normalization(model):
    out, grads = _pass(model, ins, targets)
    with state.zero_input():
      out0, grads0 = _pass(model, _zeros_like_inputs(ins), targets)
    values = [np.abs(np.asarray(t.variable.numpy(), np.float64))
              for t in targets]
  dead = tuple(t.key for t, w, g, g0 in zip(targets, values, grads, grads0)
               if np.any(w) and not np.any(_depends(w * g, w * g0)))
  reach = _depends(out, out0) | ~np.isfinite(out)
  return Connectivity(connected=bool(np.all(reach)),
                      reachable_fraction=float(np.mean(reach)), dead=dead)


@dataclasses.dataclass(frozen=True)
class CriticalSparsity:
  """``sparsity = min_l per_layer[l]``; ``bottleneck`` the minimizing layer."""
  sparsity: float
  per_layer: Dict[str, float]
  bottleneck: Optional[str]


def _best_ranks(segments: List[np.ndarray]) -> List[int]:
  """0-based rank of each segment's best element in their concatenation.

  Ranking is by ``(-value, index)`` (a stable descending sort). The best
  element of segment ``l`` is its maximum ``m_l`` at its first position
  ``p_l``, so ``r_l = #(cat > m_l) + #(cat[:p_l] == m_l)``, and the second
  count only sees earlier segments (``p_l`` is the first maximum of its
  own). Both counts come from bucketing every value ``>= min_l m_l`` among
  the sorted distinct maxima ``u_0 < ... < u_{K-1}`` (``j(v) = #(u < v)``:
  ``v > u_j`` iff ``j(v) > j``), segment by segment, in ``O(N log K)``
  without concatenating or sorting the scores. Why: with a collapsed layer
  ``min_l m_l`` is 0 and every weight qualifies; sorting them all was 1.8 s
  of a SynFlow prune of ResNet-50-ImageNet (25.5M weights).
  """
  local = [int(np.argmax(seg)) for seg in segments]
  maxima = np.array([seg[i] for seg, i in zip(segments, local)])
  levels = np.unique(maxima)
  k = levels.size
  below = np.zeros(k + 1, np.int64)  # below[j]: values with j levels < them
  equal = np.zeros((len(segments), k), np.int64)  # per segment, == u_j
  for s, seg in enumerate(segments):
    vals = seg[seg >= levels[0]]
    j = np.searchsorted(levels, vals, side="left")
    below += np.bincount(j, minlength=k + 1)
    hit = j < k
    on_level = j[hit][vals[hit] == levels[j[hit]]]
    equal[s] = np.bincount(on_level, minlength=k)
  greater = np.cumsum(below[::-1])[::-1]  # greater[j + 1] = #(v > u_j)
  earlier = np.cumsum(equal, axis=0) - equal  # == u_j in segments before
  ranks = []
  for s, m in enumerate(maxima):
    j = int(np.searchsorted(levels, m))
    ranks.append(int(greater[j + 1]) + int(earlier[s, j]))
  return ranks


def critical_sparsity(scores: Mapping[str, np.ndarray], keep: str = "largest",
                      dense: Iterable[str] = ()) -> CriticalSparsity:
  """Largest global sparsity that prunes no layer entirely (one shot).

  Args:
    scores: key -> scores of all prunable weights (e.g. ``PruneResult.scores``).
    keep: ``'largest'`` or ``'smallest'`` (GraSP) scores are kept.
    dense: keys kept dense (never collapse).

  Returns:
    :class:`CriticalSparsity`; ``s_l = 1 - (D + r_l + 1) / N`` (module doc).
  """
  if keep not in ("largest", "smallest"):
    raise ValueError(f"keep={keep!r}; use 'largest' or 'smallest'.")
  dense = set(dense)
  keys = list(scores)
  sizes = {k: int(np.size(scores[k])) for k in keys}
  total = sum(sizes.values())
  d = sum(sizes[k] for k in keys if k in dense)
  pool = [k for k in keys if k not in dense and sizes[k]]
  if not pool:
    return CriticalSparsity(1.0 - d / max(total, 1), {}, None)
  segments = []
  for k in pool:
    seg = np.asarray(scores[k]).ravel()
    if seg.dtype.kind != "f":
      seg = seg.astype(np.float64)
    segments.append(seg if keep == "largest" else -seg)
  ranks = _best_ranks(segments)
  per = {k: 1.0 - (d + r + 1) / total for k, r in zip(pool, ranks)}
  worst = min(per, key=per.get)
  return CriticalSparsity(per[worst], per, worst)
