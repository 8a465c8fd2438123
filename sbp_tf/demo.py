"""Short default demo: SBP-SR on a Stable ResNet, trained briefly on real data.

Runs in a few minutes on a 2-core CPU::

    python -m sbp_tf.demo                      # CIFAR-10 from the offline copy
    python -m sbp_tf.demo --dataset=fashion_mnist --epochs=1

It prunes a freshly initialized Stable ResNet-32 (residual branches scaled by
1/sqrt(L)) once, at initialization, with sensitivity-based pruning
(saliency |W * dL/dW|, one global threshold), installs the masks into tfmot
pruning wrappers, trains with ``model.fit``, and prints the test accuracy and
the per-layer sparsity table.
"""

from sbp_tf import _env  # noqa: F401  (Keras 2 before TensorFlow)

import time

from absl import app
from absl import flags

_DATASET = flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "fashion_mnist"],
                             "Real dataset to train on.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder holding the dataset (default: searched, see "
    "sbp_tf.data).")
_SPARSITY = flags.DEFINE_float("sparsity", 0.9, "Fraction of weights pruned.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Training epochs.")
_TRAIN_EXAMPLES = flags.DEFINE_integer(
    "train_examples", 10000, "Training examples used (0 = all).")
_WIDTH = flags.DEFINE_float("width_multiplier", 0.5,
                            "ResNet width multiplier (1.0 = the paper's).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for init, pruning and data.")


def run_demo(dataset="cifar10", data_dir=None, sparsity=0.9, epochs=2,
             train_examples=10000, width_multiplier=0.5, seed=0,
             verbose=2):
  """Prunes a Stable ResNet-32 at init with SBP, trains it, returns metrics."""
  # pylint: disable=g-import-not-at-top
  from sbp_tf import data as sbp_data
  from sbp_tf import models
  from sbp_tf import pruning
  from sbp_tf import tfmot as sbp_tfmot
  from sbp_tf.compat import keras, tf

  tf.keras.utils.set_random_seed(seed)
  limit = train_examples or None
  train, info = sbp_data.load(dataset, "train", batch_size=128,
                              data_dir=data_dir, seed=seed, limit=limit)
  test, _ = sbp_data.load(dataset, "test", batch_size=256, data_dir=data_dir)

  model = models.build("resnet32", info.num_classes, info.input_shape,
                       stable=True, width_multiplier=width_multiplier)
  t0 = time.time()
  result = pruning.prune(model, "sbp", sparsity, data=train, seed=seed)
  prune_s = time.time() - t0

  model = sbp_tfmot.wrap(model, result.masks)
  model.compile(
      optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])
  model.fit(train, epochs=epochs, verbose=verbose,
            callbacks=sbp_tfmot.callbacks())
  loss, acc = model.evaluate(test, verbose=0)

  print(result.report.to_markdown())
  print(f"\nSBP-SR on Stable ResNet-32 ({dataset}, sparsity {sparsity:.0%}, "
        f"pruned in {prune_s:.1f} s): test accuracy {acc:.4f} after "
        f"{epochs} epoch(s), loss {loss:.4f}")
  return {"test_accuracy": float(acc), "test_loss": float(loss),
          "density": float(result.masks.density())}


def main(argv):
  del argv
  run_demo(_DATASET.value, _DATA_DIR.value, _SPARSITY.value, _EPOCHS.value,
           _TRAIN_EXAMPLES.value, _WIDTH.value, _SEED.value)


def run_main():
  app.run(main)


if __name__ == "__main__":
  run_main()
