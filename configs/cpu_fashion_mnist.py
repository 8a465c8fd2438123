"""CPU scale: SBP + EOC rescaling on a depth-6 V-CNN, Fashion-MNIST (minutes).

Table 4's setting (50% sparsity, EOC init + rescaling) on a shallow, narrow
V-CNN: 10,000 training images, 4 epochs; reads the offline copy.
"""

from sbp_tf.config import experiment


def get_config():
  c = experiment("fashion_mnist", "vcnn", method="sbp", sparsity=0.5,
                 rescale=True, init="eoc", depth=6, width=32)
  c.dataset.limit_train = 10000
  c.train.epochs = 4
  c.train.lr = 0.05
  c.train.verbose = 2
  return c
