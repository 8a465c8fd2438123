"""Installs sbp_tf and its pinned, mutually compatible TensorFlow stack."""

import pathlib
import re

from setuptools import find_packages, setup

_HERE = pathlib.Path(__file__).parent
_VERSION = re.search(r'__version__ = "([^"]+)"',
                     (_HERE / "sbp_tf" / "__init__.py").read_text()).group(1)

# tfmot 0.8.1 needs Keras 2, which TF 2.21 ships as the separate tf-keras
# package of the same minor version; the rest are the versions tested here.
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "tensorboard==2.21.0",  # TF 2.21 no longer pulls it in; workdirs log to it
    "tensorflow-datasets==4.9.10",
    "keras-tuner==1.4.8",
    "absl-py~=1.2",  # tfmot 0.8.1 requires absl-py~=1.2
    "ml-collections==1.1.0",
    "numpy>=1.26,<3",
    "matplotlib>=3.8,<4",
    # The workdir lock (an flock: it dies with its process); tested 3.32, 4.3.
    "filelock>=3.12,<5",
]

EXTRAS = {
    "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4"],
    # keras-tuner's BayesianOptimization needs scikit-learn.
    "tune": ["scikit-learn>=1.4,<2"],
}
EXTRAS["dev"] = EXTRAS["test"]

setup(
    name="sbp_tf",
    version=_VERSION,
    description=("Robust Pruning at Initialization (SBP, EOC rescaling, "
                 "Stable ResNet) for Keras/TensorFlow and tfmot"),
    long_description=(_HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["sbp_tf", "sbp_tf.*"]),
    python_requires=">=3.10,<3.14",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "sbp-train=sbp_tf.train:run_main",
            "sbp-tune=sbp_tf.tune:run_main",
            "sbp-demo=sbp_tf.demo:run_main",
        ],
    },
    license="Apache-2.0",
)
