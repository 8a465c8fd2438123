"""The paper's model zoo built with Keras 3 layers (logits out).

The zoo's builders are written once, in :mod:`sbp_tf.models`, against a
:class:`~sbp_tf.models._common.Kit`; this module gives them the Keras 3 kit
(:data:`KERAS3_KIT`: ``import keras``'s layers, :mod:`sbp_tf.keras3.initializers`
and :class:`sbp_tf.keras3.layers.StableScale`) through its own
:class:`~sbp_tf.models.registry.Registry`. So the names, options, layer names
and parameter counts are those of the tf_keras zoo: ffnn, vcnn, vgg16,
vgg16x3, resnet_cifar (depth 6n+2), resnet32, resnet50, resnet104,
resnet50_imagenet. With the same ``seed`` on the TensorFlow backend the
weights are identical too (see :mod:`sbp_tf.keras3.initializers`). The
architectures are documented in docs/models.md.

Usage::

    from sbp_tf.keras3 import models
    model = models.build("resnet32", 10, (32, 32, 3), stable=True, seed=0)
    models.names(); models.options("vcnn")   # == sbp_tf.models.options("vcnn")

    @models.register("mlp")                  # a Keras 3 builder of your own
    def mlp(num_classes, input_shape, *, hidden: int = 64): ...
"""

from sbp_tf import models as _zoo  # noqa: F401  (fills registry.ZOO)
from sbp_tf.keras3 import initializers
from sbp_tf.keras3._runtime import keras
from sbp_tf.keras3.layers import StableScale
from sbp_tf.models._common import Kit
from sbp_tf.models.registry import Registry

# Built here, not in sbp_tf.models, so that `import sbp_tf` never imports
# Keras 3.
KERAS3_KIT = Kit(keras, initializers, StableScale, "keras3")
KERAS3 = Registry(KERAS3_KIT)

register = KERAS3.register
names = KERAS3.names
options = KERAS3.options
option_types = KERAS3.option_types
build = KERAS3.build


__all__ = ["KERAS3", "KERAS3_KIT", "build", "names", "option_types",
           "options", "register"]
