"""The paper's model zoo as plain functional Keras models (logits out).

Names: ffnn, vcnn, vgg16, vgg16x3, resnet32, resnet50, resnet104, resnet_cifar
(any depth 6n+2), resnet50_imagenet. See docs/models.md.

Usage::

    from sbp_tf import models
    model = models.build("resnet32", 10, (32, 32, 3), stable=True)
    models.names(); models.options("vcnn")
"""

from sbp_tf.models.registry import (  # noqa: F401
    Registry, build, names, option_types, options, register)
# Importing the family modules adds their builders to the zoo (registry.ZOO),
# which the tf_keras registry here and sbp_tf.keras3.models both serve.
from sbp_tf.models import ffnn  # noqa: F401
from sbp_tf.models import vcnn  # noqa: F401
from sbp_tf.models import vgg  # noqa: F401
from sbp_tf.models import resnet  # noqa: F401
from sbp_tf.models import resnet_imagenet  # noqa: F401


def custom_objects() -> dict:
  """Class name -> class of sbp_tf's Keras objects, for loading legacy .h5.

  The .keras format finds them by their registered names; HDF5 files need
  ``keras.models.load_model(path, custom_objects=models.custom_objects())``.
  """
  from sbp_tf import initializers, layers  # pylint: disable=g-import-not-at-top
  return {c.__name__: c for c in (
      initializers.Gaussian, initializers.GaussianBias,
      initializers.EdgeOfChaos, initializers.OrderedPhase, layers.StableScale)}


__all__ = ["Registry", "build", "custom_objects", "names", "option_types", "options",
           "register"]
