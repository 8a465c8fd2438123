"""Table 5: VGG16X3 on CIFAR-10, EOC init + rescaling (SBP), 90% sparsity."""

from sbp_tf.config import experiment


def get_config():
  return experiment("cifar10", "vgg16x3", method="sbp", sparsity=0.9,
                    rescale=True, init="eoc")
