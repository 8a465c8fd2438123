"""Table 4: V-CNN depth 50 on MNIST at 50% sparsity, EOC init + rescaling.

Other rows of the table: --config.model.options.init=ordered (ordered phase)
and --config.prune.rescale=False (EOC without rescaling).
"""

from sbp_tf.config import experiment


def get_config():
  return experiment("mnist", "vcnn", method="sbp", sparsity=0.5,
                    rescale=True, init="eoc", activation="tanh", depth=50)
