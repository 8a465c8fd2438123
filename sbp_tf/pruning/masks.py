"""Pruning masks: a mapping target key -> 0/1 array, with I/O and reports.

``density = sum_l kept_l / sum_l size_l`` over all masked weights, ``sparsity
= 1 - density``; per layer ``density_l = kept_l / size_l``.

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

from sbp_tf import compat
from sbp_tf import files
from sbp_tf import markdown
from sbp_tf.pruning.targets import prunable_targets, unprunable_layers

_ORDER_KEY = "__sbp_tf_mask_order__"


class Report(list):
  """Per-layer report: a list of row dicts plus writers.

  Each row: ``layer`` (target key), ``shape``, ``weights`` (size), ``kept``,
  ``density = kept / weights``, ``collapsed`` (kept == 0), ``pruned``
  (True). ``Masks.report(model)`` adds one row per layer whose trainable
  weights no prunable-target entry covers (a custom layer type):
  ``layer`` its path, ``type``, ``weights``, ``kept = weights``,
  ``pruned: False``. Totals and density count pruned rows only.

  Usage::

    rep = masks.report()
    print(rep.to_markdown()); rep.to_json("r.json"); rep.to_png("r.png")
  """

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

  def summary(self) -> Dict:
    return dict(layers=list(self), total_weights=self.total_weights,
                total_kept=self.total_kept, density=self.density,
                sparsity=1.0 - self.density,
                collapsed=[r["layer"] for r in self if r["collapsed"]],
                not_pruned=self.not_pruned())

  def to_json(self, path=None) -> str:
    """JSON of :meth:`summary`; also written to ``path`` (atomically) if
    given."""
    text = json.dumps(self.summary(), indent=2) + "\n"
    if path is not None:
      files.write_text(path, text)
    return text

  def to_markdown(self, path=None) -> str:
    """A markdown table: layer | shape | weights | kept | density, and a total
    row; also written to ``path`` (atomically) if given."""
    rows = [[r["layer"] + (" (collapsed)" if r["collapsed"] else "")
             + ("" if r.get("pruned", True) else
                f" (not pruned: {r.get('type', '?')})"),
             "x".join(str(d) for d in r["shape"]), r["weights"], r["kept"],
             r["density"]] for r in self]
    rows.append(["**total**", "", self.total_weights, self.total_kept,
                 self.density])
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
    """``1 - density()``."""
    return 1.0 - self.density()

  def layer_density(self) -> Dict[str, float]:
    """``{key: kept_l / size_l}``."""
    return {k: float(np.count_nonzero(m)) / max(m.size, 1)
            for k, m in self._m.items()}

  def collapsed(self) -> List[str]:
    """Keys whose mask keeps nothing (a fully pruned layer)."""
    return [k for k, m in self._m.items() if m.size and not np.any(m)]

  # Model interaction.
  def validate(self, model, complete: bool = False) -> None:
    """Checks every mask names a prunable weight of ``model`` with its shape.

    Args:
      model: a built Keras model.
      complete: also require a mask for every prunable weight.

    Raises:
      ValueError: naming the first mismatched key or shape, and the fix.
    """
    check_against(self, prunable_targets(model), model.name, complete)

  def apply(self, model) -> None:
    """Zeroes pruned weights in place: ``W <- W * mask`` for every key.

    Warns when the masks keep no weight at all (the model then outputs a
    constant).
    """
    self.validate(model)
    if self.size() and not self.kept():
      warnings.warn(
          f"These masks keep 0 of {self.size()} weights: every prunable "
          "weight becomes zero and the model outputs a constant. Fix: lower "
          "the sparsity (or check the masks file).", stacklevel=2)
    for t in prunable_targets(model):
      if t.key in self._m:
        v = t.variable
        v.assign(v.numpy() * self._m[t.key].astype(v.dtype.as_numpy_dtype))

  def report(self, model=None) -> Report:
    """Per-layer :class:`Report`; with ``model``, rows follow its layer order."""
    keys = list(self._m)
    if model is not None:
      self.validate(model)
      order = [t.key for t in prunable_targets(model)]
      keys = [k for k in order if k in self._m]
    rep = Report()
    for k in keys:
      m = self._m[k]
      kept = int(np.count_nonzero(m))
      rep.append(dict(layer=k, shape=[int(d) for d in m.shape],
                      weights=int(m.size), kept=kept,
                      density=kept / max(m.size, 1), collapsed=kept == 0,
                      pruned=True))
    for u in (unprunable_layers(model) if model is not None else ()):
      # Reported, never skipped silently: register its class to prune it.
      rep.append(dict(layer=u["layer"], type=u["type"], shape=[],
                      weights=u["weights"], kept=u["weights"], density=1.0,
                      collapsed=False, pruned=False))
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
  def ones_like(cls, model) -> "Masks":
    """All-kept masks for every prunable weight of ``model``."""
    compat.check_not_keras3(model, "Masks.ones_like")
    return cls({t.key: np.ones(t.variable.shape, np.float32)
                for t in prunable_targets(model)})
