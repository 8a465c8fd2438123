"""sbp_tf.keras3: Robust Pruning at Initialization for Keras 3 models.

A front end beside sbp_tf's tfmot path. Every Keras object here comes from
``import keras`` (Keras 3); sbp_tf's framework-free pieces are shared with
the Keras 2 path: the methods and their formulas
(:mod:`sbp_tf.pruning.scores`), exact top-k selection, ``Masks`` and its
reports, EOC theory (:mod:`sbp_tf.eoc`), the rescaling math and the
diagnostics.

Which path to use when:

* **Keras 3** (your code does ``import keras``, models from
  ``keras.applications`` or your own Keras 3 layers; any Keras 3
  optimizer in a plain ``model.fit``): ``from sbp_tf import keras3``.
  Masks are kept by a variable constraint (:func:`mask`), saved inside
  ``.keras`` files; export to TFLite with :mod:`sbp_tf.keras3.export`.
  Gradient methods, SynFlow and export need the TensorFlow backend;
  ``magnitude``/``random``, masks and training work on any backend.
* **Keras 2 / tfmot** (tensorflow-model-optimization wrappers, the training
  binaries, configs, strategies, TPU): ``import sbp_tf`` and ``tf.keras``
  (tf_keras), :mod:`sbp_tf.pruning` and :mod:`sbp_tf.tfmot`.

Import story: ``import sbp_tf`` (which ``from sbp_tf import keras3`` runs
first) sets ``TF_USE_LEGACY_KERAS=1``, so from then on ``tf.keras`` is
tf_keras; ``import keras`` is untouched and stays Keras 3, before or after,
and models built from it contain no tf_keras object (tested in a fresh
process). Two things to know: ``tf.keras`` in the same process means Keras 2
after this import (use ``import keras`` for Keras 3), and a process that
already set ``TF_USE_LEGACY_KERAS=0`` or touched ``tf.keras`` as Keras 3
before importing sbp_tf cannot import it (sbp_tf raises, naming the fix).
Never pass objects of one Keras to the other: tf_keras models are refused
here and Keras 3 models by ``sbp_tf.pruning``, each with a message naming
the right path.

Quick start::

    import numpy as np
    from sbp_tf import keras3  # first: it holds TensorFlow's log to its level
    import keras

    x = np.random.default_rng(0).normal(size=(256, 32, 32, 3)).astype("float32")
    y = np.arange(256) % 10
    model = keras3.models.build("resnet32", 10, (32, 32, 3), stable=True,
                                width_multiplier=0.25, seed=0)
    result = keras3.prune(model, "sbp", 0.95, data=(x[:128], y[:128]))
    print(result.report.to_markdown())               # per-layer density
    keras3.mask(model, result.masks)                 # pruned weights stay 0
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=1)
    model.save("pruned.keras")                       # the masks travel with it
    print(keras3.export.to_tflite(model, "pruned.tflite")["size_ratio"])

Public API (mirrors :mod:`sbp_tf.pruning`): :func:`prune`, :func:`score`,
:func:`select`, :func:`apply`, :func:`diagnose`, :func:`mask`,
:func:`masks_of`, :func:`unmask`, :func:`prunable_targets`,
:func:`methods`, ``Masks``, ``Report``, ``Scores``, ``PruneResult``; the
modules :mod:`models` (the zoo), :mod:`initializers`, :mod:`layers`
(``StableScale``), :mod:`export`. See docs/keras3.md.
"""

from sbp_tf.keras3 import _runtime  # noqa: F401  (checks Keras 3 first)
from sbp_tf.keras3 import initializers  # noqa: F401
from sbp_tf.keras3 import layers  # noqa: F401
from sbp_tf.keras3 import models  # noqa: F401
from sbp_tf.keras3 import export  # noqa: F401
from sbp_tf.keras3.masking import (  # noqa: F401
    MaskConstraint, mask, masks_of, unmask)
from sbp_tf.pruning.masks import Masks, Report  # noqa: F401  (one class)
from sbp_tf.keras3.prune import (  # noqa: F401
    PruneResult, Scores, apply, diagnose, methods, prune, score, select)
from sbp_tf.keras3.targets import prunable_targets  # noqa: F401

__all__ = ["MaskConstraint", "Masks", "PruneResult", "Report", "Scores",
           "apply", "diagnose", "export", "initializers", "layers", "mask",
           "masks_of", "methods", "models", "prunable_targets", "prune",
           "score", "select", "unmask"]
