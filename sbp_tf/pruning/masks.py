"""Pruning masks: a mapping target key -> 0/1 array, with I/O and reports.

``density = sum_l kept_l / sum_l size_l`` over all masked weights, ``sparsity
= 1 - density``; per layer ``density_l = kept_l / size_l``. Of the whole
model: ``model_sparsity = sum_l (size_l - kept_l) / M``, ``M`` the model's
weights (its trainable variables and every prunable target, each once), so
biases, normalization scales and the weights of layers no target covers
count as kept.

Usage::

    masks = Masks({"dense/kernel": np.ones((4, 3))})
    masks.save("/tmp/masks.npz")
    masks = Masks.load("/tmp/masks.npz")
    print(masks.report().to_markdown())
"""

import json
import os
import warnings
from typing import Dict, Iterator, List, Mapping, Optional

import numpy as np

from sbp_tf import files
from sbp_tf import markdown
from sbp_tf.pruning import diagnostics
from sbp_tf.pruning import kit as kit_lib

_ORDER_KEY = "__sbp_tf_mask_order__"


def model_weight_count(model, target_variables=()) -> int:
  """``M``: scalars in ``model``'s trainable variables and in
  ``target_variables`` (its prunable targets, frozen ones included), each
  variable once; masks' and optimizers' state is not counted. Reads only
  ``trainable_weights`` and shapes, so any Keras."""
  sizes = {}
  for v in list(model.trainable_weights) + list(target_variables):
    sizes[id(v)] = int(np.prod(tuple(v.shape)))
  return int(sum(sizes.values()))


class Report(list):
  """Per-layer report: a list of row dicts plus writers.

  Each row: ``layer`` (target key), ``shape``, ``weights`` (size), ``kept``,
  ``density = kept / weights``, ``collapsed`` (kept == 0), ``pruned``
  (True). ``Masks.report(model)`` adds one row per layer whose trainable
  weights no prunable-target entry covers (a custom layer type):
  ``layer`` its path, ``type``, ``weights``, ``kept = weights``,
  ``pruned: False``. Totals and density count pruned rows only; with a
  model, :attr:`model_weights` (``M``, see :func:`model_weight_count`)
  gives the whole model's :attr:`model_sparsity` next to them.

  Usage::

    rep = masks.report(model)
    rep.sparsity, rep.model_sparsity      # of the targets, of the model
    print(rep.to_markdown()); rep.to_json("r.json"); rep.to_png("r.png")
  """
  model_weights: Optional[int] = None  # M; None: reported without a model

  def pruned_rows(self) -> List[Dict]:
    """Rows of prunable weights (not the ``pruned: False`` ones)."""
    return [r for r in self if r.get("pruned", True)]

  def not_pruned(self) -> List[str]:
    """Paths of layers holding weights that are not pruned (unknown type)."""
    return [r["layer"] for r in self if not r.get("pruned", True)]

  @property
  def total_weights(self) -> int:
    return int(sum(r["weights"] for r in self.pruned_rows()))

  @property
  def total_kept(self) -> int:
    return int(sum(r["kept"] for r in self.pruned_rows()))

  @property
  def density(self) -> float:
    """``sum kept / sum weights`` over all rows."""
    return self.total_kept / max(self.total_weights, 1)

  @property
  def sparsity(self) -> float:
    """``1 - density``: the sparsity of the pruned targets."""
    return 1.0 - self.density

  @property
  def model_sparsity(self) -> Optional[float]:
    """``(total_weights - total_kept) / M``: the share of the whole model's
    weights that the masks prune (None without a model)."""
    if self.model_weights is None:
      return None
    return (self.total_weights - self.total_kept) / max(self.model_weights, 1)

  def summary(self) -> Dict:
    return dict(layers=list(self), total_weights=self.total_weights,
                total_kept=self.total_kept, density=self.density,
                sparsity=self.sparsity, model_weights=self.model_weights,
                model_sparsity=self.model_sparsity,
                collapsed=[r["layer"] for r in self if r["collapsed"]],
                not_pruned=self.not_pruned())

  def warn_not_pruned(self, where: str) -> None:
    """One warning naming the layers whose weights are not pruned (the
    ``pruned: False`` rows) with the targets' and the model's sparsity and
    the fix (:func:`sbp_tf.pruning.register_target`); silent without them."""
    rows = [r for r in self if not r.get("pruned", True)]
    if not rows:
      return
    names = ", ".join(f"{r['layer']} ({r.get('type', '?')}, {r['weights']} "
                      "weights)" for r in rows)
    whole = ("" if self.model_sparsity is None else
             f", the whole model's only {self.model_sparsity:.4f}")
    warnings.warn(
        f"{where}: the trainable weights of {len(rows)} layer(s) of a type "
        f"with no prunable-target entry are NOT pruned: {names}. The "
        f"sparsity {self.sparsity:.4f} is that of the pruned targets{whole}."
        " Fix: declare their prunable weights with "
        "sbp_tf.pruning.register_target(LayerClass, ('attr',)) before "
        "pruning (attrs=() declares a layer never prunable and silences "
        "this).", stacklevel=3)

  def to_json(self, path=None) -> str:
    """JSON of :meth:`summary`; also written to ``path`` (atomically) if
    given."""
    text = json.dumps(self.summary(), indent=2) + "\n"
    if path is not None:
      files.write_text(path, text)
    return text

  def to_markdown(self, path=None) -> str:
    """A markdown table: layer | shape | weights | kept | density, a total
    row (the pruned targets) and, with a model, a whole-model row (all its
    weights); also written to ``path`` (atomically) if given."""
    rows = [[r["layer"] + (" (collapsed)" if r["collapsed"] else "")
             + ("" if r.get("pruned", True) else
                f" (not pruned: {r.get('type', '?')})"),
             "x".join(str(d) for d in r["shape"]), r["weights"], r["kept"],
             r["density"]] for r in self]
    rows.append(["**total**", "", self.total_weights, self.total_kept,
                 self.density])
    if self.model_weights is not None:  # biases, norms, unpruned layers too
      pruned = self.total_weights - self.total_kept
      rows.append(["**whole model**", "", self.model_weights,
                   self.model_weights - pruned, 1.0 - self.model_sparsity])
    text = markdown.table(["layer", "shape", "weights", "kept", "density"],
                          rows, align="llrrr")
    if path is not None:
      files.write_text(path, text)
    return text

  def __str__(self):
    return self.to_markdown()

  def to_png(self, path: str, title: Optional[str] = None) -> str:
    """Bar plot of density by layer (input side first, log axis, collapsed
    layers marked) saved to ``path``: :func:`sbp_tf.plots.density_png`."""
    from sbp_tf import plots  # pylint: disable=g-import-not-at-top
    return plots.density_png(self, path, title)


def check_against(masks: Mapping[str, np.ndarray], targets, model_name: str,
                  complete: bool = False) -> None:
  """Every mask names one of ``targets`` (any framework's) with its shape.

  Raises:
    ValueError: naming the first unknown key or shape mismatch (or, with
      ``complete``, the missing keys), and the fix.
  """
  targets = {t.key: t for t in targets}
  for k, m in masks.items():
    if k not in targets:
      raise ValueError(
          f"Mask key {k!r} is not a prunable weight of model "
          f"{model_name!r} (its keys: {', '.join(list(targets)[:8])}"
          f"{', ...' if len(targets) > 8 else ''}). Fix: compute the masks "
          "on a model with the same layer names (prunable_targets keys).")
    shape = tuple(targets[k].variable.shape)
    if tuple(np.shape(m)) != shape:
      raise ValueError(
          f"Mask {k!r} has shape {tuple(np.shape(m))} but the model's weight "
          f"has shape {shape}. Fix: compute the masks on the same "
          "architecture.")
  missing = [k for k in targets if k not in masks]
  if complete and missing:
    raise ValueError(f"No mask for prunable weight(s) {missing[:5]}. Fix: "
                     "prune the whole model or pass complete=False.")


class Masks(Mapping):
  """Read-only mapping target key -> float32 0/1 mask (1 = kept).

  Keys are :func:`sbp_tf.pruning.prunable_targets` keys, in layer order.

  Usage::

    masks = prune(model, "sbp", 0.9, data=ds).masks
    masks.density()                 # kept / total = 0.1
    masks.apply(other_model)        # zero the pruned weights in place
  """

  def __init__(self, masks: Mapping[str, np.ndarray]):
    if not isinstance(masks, Mapping):
      raise TypeError(f"Masks expects a mapping key -> array, got "
                      f"{type(masks).__name__}. Fix: pass a dict.")
    self._m = {}
    for k, v in masks.items():
      a = np.asarray(v)
      if a.size and not np.all((a == 0) | (a == 1)):
        raise ValueError(f"Mask {k!r} has values other than 0 and 1. Fix: "
                         "pass binary masks (1 = kept, 0 = pruned).")
      a = a.astype(np.float32, copy=True)
      a.setflags(write=False)
      self._m[str(k)] = a

  def __getitem__(self, key) -> np.ndarray:
    return self._m[key]

  def __iter__(self) -> Iterator[str]:
    return iter(self._m)

  def __len__(self) -> int:
    return len(self._m)

  def __repr__(self):
    return (f"Masks({len(self)} layers, density={self.density():.4f}, "
            f"kept={self.kept()}/{self.size()})")

  # Counting.
  def size(self) -> int:
    """Total number of masked weights."""
    return int(sum(m.size for m in self._m.values()))

  def kept(self) -> int:
    """Total number of kept weights (mask == 1)."""
    return int(sum(np.count_nonzero(m) for m in self._m.values()))

  def density(self) -> float:
    """Global kept fraction ``sum kept / sum size``."""
    return self.kept() / max(self.size(), 1)

  def sparsity(self) -> float:
    """``1 - density()``: the sparsity of the masked (target) weights; the
    whole model's is :meth:`model_sparsity`."""
    return 1.0 - self.density()

  def model_sparsity(self, model) -> float:
    """``sum_l (size_l - kept_l) / M``: the share of all of ``model``'s
    weights (``M``, :func:`model_weight_count`: biases, normalization and
    unpruned layers included) that these masks prune."""
    return self.report(model).model_sparsity

  def layer_density(self) -> Dict[str, float]:
    """``{key: kept_l / size_l}``."""
    return {k: float(np.count_nonzero(m)) / max(m.size, 1)
            for k, m in self._m.items()}

  def collapsed(self) -> List[str]:
    """Keys whose mask keeps nothing (a fully pruned layer)."""
    return diagnostics.collapsed_layers(self._m)

  # Model interaction.
  def validate(self, model, complete: bool = False, *, kit=None) -> None:
    """Checks every mask names a prunable weight of ``model`` with its shape.

    Args:
      model: a built Keras model.
      complete: also require a mask for every prunable weight.
      kit: the Keras path's hooks (:mod:`sbp_tf.pruning.kit`; default
        tf_keras); the same for :meth:`apply`, :meth:`report`,
        :meth:`ones_like`.

    Raises:
      ValueError: naming the first mismatched key or shape, and the fix.
    """
    check_against(self, kit_lib.resolve(kit).prunable_targets(model),
                  model.name, complete)

  def apply(self, model, *, kit=None) -> None:
    """Zeroes pruned weights in place: ``W <- W * mask`` for every key.

    Warns when the masks keep no weight at all (the model then outputs a
    constant).
    """
    kit = kit_lib.resolve(kit)
    self.validate(model, kit=kit)
    if self.size() and not self.kept():
      warnings.warn(
          f"These masks keep 0 of {self.size()} weights: every prunable "
          "weight becomes zero and the model outputs a constant. Fix: lower "
          "the sparsity (or check the masks file).", stacklevel=2)
    for t in kit.prunable_targets(model):
      if t.key in self._m:
        w = t.variable.numpy()
        t.variable.assign(w * self._m[t.key].astype(w.dtype))

  def report(self, model=None, *, kit=None) -> Report:
    """Per-layer :class:`Report`; with ``model``, rows follow its layer order."""
    keys = list(self._m)
    kit = kit_lib.resolve(kit)
    if model is not None:
      self.validate(model, kit=kit)
      targets = kit.prunable_targets(model)
      keys = [t.key for t in targets if t.key in self._m]
    rep = Report()
    for k in keys:
      m = self._m[k]
      kept = int(np.count_nonzero(m))
      rep.append(dict(layer=k, shape=[int(d) for d in m.shape],
                      weights=int(m.size), kept=kept,
                      density=kept / max(m.size, 1), collapsed=kept == 0,
                      pruned=True))
    if model is None:
      return rep
    for u in kit.unprunable_layers(model):
      # Reported, never skipped silently: register its class to prune it.
      rep.append(dict(layer=u["layer"], type=u["type"], shape=[],
                      weights=u["weights"], kept=u["weights"], density=1.0,
                      collapsed=False, pruned=False))
    rep.model_weights = model_weight_count(
        model, [t.variable for t in targets])
    return rep

  # I/O.
  def save(self, path: str) -> str:
    """Writes a compressed ``.npz`` (uint8 0/1, key order kept); returns path."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
      path += ".npz"
    arrays = {k: m.astype(np.uint8) for k, m in self._m.items()}
    arrays[_ORDER_KEY] = np.array(list(self._m), dtype=np.str_)
    with files.atomic(path) as f:  # a crashed save never leaves half a file
      np.savez_compressed(f, **arrays)
    return path

  @classmethod
  def load(cls, path: str) -> "Masks":
    """Reads a file written by :meth:`save` (``load("m")`` reads ``m.npz``).

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is truncated or corrupt (the message names it).
    """
    path = os.fspath(path)
    if (not path.endswith(".npz") and not os.path.exists(path)
        and os.path.exists(path + ".npz")):
      path += ".npz"  # the name save() wrote for the same argument
    if not os.path.exists(path):
      raise FileNotFoundError(f"masks file {path!r} does not exist. Fix: "
                              "pass the path Masks.save returned.")
    try:
      with np.load(path, allow_pickle=False) as z:
        names = [n for n in z.files if n != _ORDER_KEY]
        order = (list(z[_ORDER_KEY]) if _ORDER_KEY in z.files
                 else sorted(names))
        return cls({str(k): z[str(k)] for k in order})
    except Exception as e:  # BadZipFile, EOFError, zlib.error, bad CRC, ...
      raise ValueError(
          f"masks file {path!r} is truncated or corrupt ({type(e).__name__}: "
          f"{e}). Fix: restore it, or prune again and save new masks.") from None

  @classmethod
  def ones_like(cls, model, *, kit=None) -> "Masks":
    """All-kept masks for every prunable weight of ``model``."""
    kit = kit_lib.resolve(kit)
    kit.check_model(model, "Masks.ones_like")
    return cls({t.key: np.ones(tuple(t.variable.shape), np.float32)
                for t in kit.prunable_targets(model)})
