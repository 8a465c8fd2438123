"""Keep pruned weights exactly zero in a plain Keras 3 ``model.fit``.

:func:`mask` sets each pruned kernel's constraint to a
:class:`MaskConstraint`, ``W <- c(W) * mask`` (``c`` the constraint the
layer already had, if any). Every Keras 3 optimizer applies a variable's
constraint right after each update (``BaseOptimizer.apply``), so after every
step, whatever the optimizer (SGD with momentum, Adam, weight decay), a
pruned weight is exactly ``0``. The constraint is also the layer's
``kernel_constraint`` (``depthwise_constraint``/``pointwise_constraint``),
so it is part of the layer config (a ``MultiHeadAttention``'s four
projections share one ``kernel_constraint`` in its config: there a
:class:`SharedMasks` holds them all, told apart by variable path): ``.keras`` files (and
``ModelCheckpoint`` saving them) carry the masks, bit-packed, and a loaded
model keeps enforcing them (``import sbp_tf.keras3`` first registers
``sbp_tf_keras3>MaskConstraint``). Weights-only checkpoints
(``.weights.h5``, ``tf.train.Checkpoint``) hold the zeros; the masks live in
the model they are loaded into. So do those of a subclassed model: its
config is what its own ``get_config`` returns, not its layers' configs, so
its ``.keras`` file holds the zeros but not the masks (:func:`mask` warns;
mask the loaded model again).

Usage::

    from sbp_tf import keras3
    keras3.mask(model, result.masks)      # before compile/fit
    model.compile("adam", loss, ...)
    model.fit(x, y)                       # pruned weights stay exactly 0
    keras3.masks_of(model)                # Masks read back from the model
"""

import base64
import warnings
import zlib
from typing import Mapping

import numpy as np

from sbp_tf import compat

from sbp_tf.keras3.kit import KERAS3
from sbp_tf.keras3._runtime import PACKAGE, check_model, keras
from sbp_tf.keras3.targets import prunable_targets
from sbp_tf.pruning.masks import Masks


def _pack(mask: np.ndarray) -> str:
  """0/1 array -> base64 of zlib(packbits): 1 bit per weight before zlib."""
  bits = np.packbits(np.asarray(mask).ravel() != 0)
  return base64.b64encode(zlib.compress(bits.tobytes(), 9)).decode("ascii")


def _unpack(packed: str, shape) -> np.ndarray:
  n = int(np.prod(shape))
  raw = np.frombuffer(zlib.decompress(base64.b64decode(packed)), np.uint8)
  return np.unpackbits(raw)[:n].reshape(shape).astype(np.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskConstraint(keras.constraints.Constraint):
  """``w -> inner(w) * mask``: keeps pruned entries exactly zero.

  Args:
    mask: 0/1 array of the kernel's shape (1 = kept).
    inner: the constraint applied first (e.g. ``MaxNorm``), or None.
    shape, packed: the serialized mask (from :meth:`get_config`).

  Example::

    c = MaskConstraint(np.array([[1., 0.], [0., 1.]]))
    c(keras.ops.ones((2, 2)))           # [[1, 0], [0, 1]]
  """

  def __init__(self, mask=None, inner=None, *, shape=None, packed=None):
    if mask is None:
      if packed is None or shape is None:
        raise ValueError("MaskConstraint needs a mask (or shape and packed "
                         "from its config). Fix: MaskConstraint(mask_array).")
      mask = _unpack(packed, tuple(shape))
    mask = np.asarray(mask, np.float32)
    if mask.size and not np.all((mask == 0) | (mask == 1)):
      raise ValueError("MaskConstraint: the mask has values other than 0 and "
                       "1. Fix: pass a binary mask (1 = kept).")
    mask.setflags(write=False)
    self.mask = mask
    self.inner = keras.constraints.get(inner) if isinstance(inner, dict) \
        else inner
    # One backend tensor, created eagerly and captured by traced steps.
    self._tensor = keras.ops.convert_to_tensor(mask)

  def __call__(self, w):
    if self.inner is not None:
      w = self.inner(w)
    m = self._tensor
    if keras.backend.standardize_dtype(w.dtype) != "float32":
      m = keras.ops.cast(m, w.dtype)
    return keras.ops.multiply(w, m)

  def get_config(self):
    return {"shape": [int(d) for d in self.mask.shape],
            "packed": _pack(self.mask),
            "inner": (None if self.inner is None
                      else keras.constraints.serialize(self.inner))}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SharedMasks(keras.constraints.Constraint):
  """The masks of a layer whose config holds one constraint for several
  sublayers' kernels (``MultiHeadAttention``: query, key, value and output
  projections), told apart by the variable's path.

  Keras 3 applies a variable's constraint to the variable itself after each
  optimizer update, so ``w.path`` (``"mha/query/kernel"``) names which mask
  applies; the layer's ``kernel_constraint`` (its config, hence ``.keras``
  files) carries them all, and a loaded model keeps enforcing each one.

  Args:
    masks: ``{local key: 0/1 array}`` (``"query/kernel"``, ...).
    inner: the constraint applied first, or None.
  """

  def __init__(self, masks=None, inner=None, *, packed=None):
    self.masks = ({k: MaskConstraint(m) for k, m in masks.items()}
                  if masks is not None else  # from get_config: each one's
                  {k: MaskConstraint(**v) for k, v in (packed or {}).items()})
    self.inner = keras.constraints.get(inner) if isinstance(inner, dict) \
        else inner

  def local_key(self, path):
    """The key of ``masks`` that variable ``path`` ends in, or None."""
    for k in self.masks:
      if path == k or str(path).endswith("/" + k):
        return k
    return None

  def __call__(self, w):
    key = self.local_key(getattr(w, "path", ""))
    if key is None:
      raise ValueError(
          f"SharedMasks: cannot tell which of {sorted(self.masks)} applies "
          f"to a value without a variable path ({getattr(w, 'path', None)!r})."
          " Fix: apply it to the variable (as Keras 3 optimizers do), or "
          "re-mask the model with sbp_tf.keras3.mask.")
    if self.inner is not None:
      w = self.inner(w)
    return self.masks[key](w)

  def get_config(self):
    return {"packed": {k: c.get_config() for k, c in self.masks.items()},
            "inner": (None if self.inner is None
                      else keras.constraints.serialize(self.inner))}


def _shares_kernel_constraint(layer) -> bool:
  """``MultiHeadAttention``: one ``kernel_constraint`` for its sublayers."""
  return hasattr(layer, "_kernel_constraint") and type(
      layer).__name__ == "MultiHeadAttention"


def _mask_shared(targets, m) -> None:
  """Puts the masks of shared-constraint owners in their config."""
  owners = {}
  for t in targets:
    if t.key in m and t.owner is not t.layer and _shares_kernel_constraint(
        t.owner):
      owners.setdefault(id(t.owner), (t.owner, {}))[1][t.local] = m[t.key]
  for owner, masks in owners.values():
    inner = owner._kernel_constraint  # pylint: disable=protected-access
    if isinstance(inner, SharedMasks):
      inner = inner.inner
    owner._kernel_constraint = SharedMasks(masks, inner=inner)  # pylint: disable=protected-access


def _warn_if_subclassed(model) -> None:
  """A subclassed model's ``.keras`` file cannot carry the masks (module
  doc): say so where they are set, with the fix."""
  if compat.is_graph_network(model) or isinstance(model, keras.Sequential):
    return
  warnings.warn(
      f"keras3.mask: {model.name!r} is a subclassed model; its layers' "
      "constraints (the masks) are not part of its config, so a .keras file "
      "of it holds the zeros but not the masks. Fix: save the masks "
      "(Masks.save) and call keras3.mask(loaded_model, Masks.load(path)) "
      "after loading, or build the model with the functional API.",
      UserWarning, stacklevel=3)


def _retrace(model) -> None:
  """Drops a traced train step: constraints are read when it is traced."""
  if getattr(model, "train_function", None) is not None:
    model.make_train_function(force=True)


def mask(model, masks: Mapping[str, np.ndarray]) -> Masks:
  """Zeroes the pruned weights and keeps them zero in every later ``fit``.

  Sets, for every key of ``masks``, ``W <- W * mask`` and the kernel's
  constraint (variable and layer config) to :class:`MaskConstraint`; a
  constraint the layer had is kept and applied first. Calling it again
  replaces the masks. Call it before ``fit`` (a step traced earlier is
  retraced).

  Args:
    model: a built Keras 3 model.
    masks: key -> 0/1 mask (e.g. ``keras3.prune(...).masks``).

  Returns:
    the validated :class:`Masks`.

  Raises:
    ValueError: a key or shape that does not fit ``model`` (nothing changed).

  Warns:
    UserWarning: ``model`` is subclassed, so its ``.keras`` file will not
      carry the masks (module doc).
  """
  check_model(model, "keras3.mask")
  m = masks if isinstance(masks, Masks) else Masks(masks)
  m.apply(model, kit=KERAS3)  # validates, then W <- W * mask
  targets = prunable_targets(model)
  for t in targets:
    if t.key not in m:
      continue
    inner = getattr(t.layer, t.constraint_attr, None)
    if isinstance(inner, (MaskConstraint, SharedMasks)):
      inner = inner.inner
    c = MaskConstraint(m[t.key], inner=inner)
    setattr(t.layer, t.constraint_attr, c)  # saved in the layer config
    t.variable.constraint = c               # applied by the optimizer
  _mask_shared(targets, m)  # attention: the owner's config holds them
  _retrace(model)
  _warn_if_subclassed(model)
  return m


def masks_of(model) -> Masks:
  """The masks enforced on ``model`` (by :func:`mask` or loaded from a
  ``.keras`` file), in layer order; empty if none."""
  check_model(model, "keras3.masks_of")
  out = {}
  for t in prunable_targets(model):
    c = t.variable.constraint
    if isinstance(c, MaskConstraint):
      out[t.key] = c.mask
    elif isinstance(c, SharedMasks):  # a loaded attention layer
      key = c.local_key(t.variable.path)
      if key is not None:
        out[t.key] = c.masks[key].mask
  return Masks(out)


def unmask(model) -> Masks:
  """Removes the mask constraints (restoring the layers' own) and returns
  the masks; weights are left as they are (pruned ones zero)."""
  found = masks_of(model)
  for t in prunable_targets(model):
    c = t.variable.constraint
    if isinstance(c, (MaskConstraint, SharedMasks)):
      setattr(t.layer, t.constraint_attr, c.inner)
      t.variable.constraint = c.inner
    owner_c = getattr(t.owner, "_kernel_constraint", None)
    if isinstance(owner_c, SharedMasks):
      t.owner._kernel_constraint = owner_c.inner  # pylint: disable=protected-access
  _retrace(model)
  return found


__all__ = ["MaskConstraint", "SharedMasks", "mask", "masks_of", "unmask"]
