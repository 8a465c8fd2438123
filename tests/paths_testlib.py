"""What the both-Keras-paths tests share: a custom layer owning a weight."""

_POS = {}


def pos_embedding(K):
  """``PosEmbedding`` of Keras module ``K`` (one class per Keras, registered
  serializable so saved models load): ``x + P``, a learned position
  embedding that adds a constant (a weight no registry entry covers)."""
  if id(K) in _POS:
    return _POS[id(K)]
  register = (K.saving.register_keras_serializable if hasattr(K, "saving")
              and hasattr(K.saving, "register_keras_serializable")
              else K.utils.register_keras_serializable)

  @register(package="sbp_tf_tests")
  class PosEmbedding(K.layers.Layer):
    """x + P: a learned position embedding (a weight of its own)."""

    def build(self, input_shape):
      self.pos = self.add_weight(name="pos", shape=tuple(input_shape[1:]),
                                 initializer="random_normal")

    def call(self, x):
      return x + self.pos
  _POS[id(K)] = PosEmbedding
  return PosEmbedding
