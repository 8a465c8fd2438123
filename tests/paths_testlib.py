"""What the both-Keras-paths tests share: each path's entry points (the
``path`` fixture of conftest.py gives one :class:`Path` per Keras, as Keras
runs its suite once per backend), a custom layer owning a weight and a
subclassed model, one class of each per Keras."""

import functools

KITS = ("tf_keras", "keras3")


class Path:
  """One Keras path: its Keras module and the sbp_tf functions a user of
  that Keras calls (tf_keras: :mod:`sbp_tf.pruning`, :mod:`sbp_tf.tfmot`,
  :mod:`sbp_tf.export`; Keras 3: :mod:`sbp_tf.keras3`)."""

  def __init__(self, name):
    # pylint: disable=import-outside-toplevel
    import keras as keras3_module
    from sbp_tf import export, initializers, keras3, masking, pruning
    from sbp_tf import models as k2_models
    from sbp_tf.compat import keras as keras2_module
    from sbp_tf.keras3 import initializers as k3_initializers
    from sbp_tf.keras3 import targets as k3_targets
    from sbp_tf.keras3.kit import KERAS3
    from sbp_tf.pruning import kit as kit_lib
    import sbp_tf.tfmot as sbp_tfmot
    if name not in KITS:
      raise ValueError(f"path {name!r}: one of {KITS}")
    self.name = name
    k3 = name == "keras3"
    self.keras = keras3_module if k3 else keras2_module
    self.other_keras = keras2_module if k3 else keras3_module
    self.kit = KERAS3 if k3 else kit_lib.tf_keras()
    api = keras3 if k3 else pruning
    self.prune, self.score, self.select = api.prune, api.score, api.select
    self.apply, self.diagnose = api.apply, api.diagnose
    self.targets = api.prunable_targets
    self.Masks = api.Masks  # pylint: disable=invalid-name
    self.connectivity = (functools.partial(pruning.connectivity, kit=KERAS3)
                         if k3 else pruning.connectivity)
    self.unprunable_layers = (k3_targets.unprunable_layers if k3
                              else pruning.unprunable_layers)
    self.models = keras3.models if k3 else k2_models
    self.initializers = k3_initializers if k3 else initializers
    self.export = keras3.export if k3 else export
    self._keras3, self._masking, self._tfmot = keras3, masking, sbp_tfmot

  def __repr__(self):
    return self.name

  def keep(self, model, masks):
    """``(model to fit, callbacks)`` keeping ``masks`` through ``fit``:
    tfmot wrappers on tf_keras (in-place constraints for a subclassed model,
    which tfmot cannot wrap), constraints on Keras 3."""
    if self.name == "keras3":
      self._keras3.mask(model, masks)
      return model, []
    if getattr(model, "inputs", None):
      return self._tfmot.wrap(model, masks), self._tfmot.callbacks()
    return self._masking.constrain(model, masks), []

  def strip(self, model):
    """The plain model to save and export (Keras 3: masks stay inside)."""
    return model if self.name == "keras3" else self._tfmot.strip(model)

  def load(self, file):
    """A model saved by this path's ``model.save``."""
    if self.name == "keras3":
      return self.keras.saving.load_model(file)
    return self.keras.models.load_model(file)


_POS = {}
_RES_MLP = {}


def _register(K):
  return (K.saving.register_keras_serializable if hasattr(K, "saving")
          and hasattr(K.saving, "register_keras_serializable")
          else K.utils.register_keras_serializable)


def pos_embedding(K):
  """``PosEmbedding`` of Keras module ``K`` (one class per Keras, registered
  serializable so saved models load): ``x + P``, a learned position
  embedding that adds a constant (a weight no registry entry covers)."""
  if id(K) in _POS:
    return _POS[id(K)]

  @_register(K)(package="sbp_tf_tests")
  class PosEmbedding(K.layers.Layer):
    """x + P: a learned position embedding (a weight of its own)."""

    def build(self, input_shape):
      self.pos = self.add_weight(name="pos", shape=tuple(input_shape[1:]),
                                 initializer="random_normal")

    def call(self, x):
      return x + self.pos
  _POS[id(K)] = PosEmbedding
  return PosEmbedding


def res_mlp(K):
  """``ResMLP`` of Keras module ``K``: a subclassed ``Model`` with its own
  ``call``, ``head(x + d2(d1(x)))`` (two Dense layers and a residual add),
  registered serializable (one class per Keras)."""
  if id(K) in _RES_MLP:
    return _RES_MLP[id(K)]

  @_register(K)(package="sbp_tf_tests")
  class ResMLP(K.Model):
    """The user's subclassed model: two Dense layers and a residual add."""

    def __init__(self, width=8, classes=10, name="res_mlp", **kwargs):
      super().__init__(name=name, **kwargs)
      self.width, self.classes = width, classes
      self.d1 = K.layers.Dense(16, activation="relu", name="d1")
      self.d2 = K.layers.Dense(width, name="d2")
      self.head = K.layers.Dense(classes, name="head")

    def call(self, x):
      return self.head(x + self.d2(self.d1(x)))

    def get_config(self):
      return dict(name=self.name, width=self.width, classes=self.classes)

    @classmethod
    def from_config(cls, config):
      return cls(**config)
  _RES_MLP[id(K)] = ResMLP
  return ResMLP
