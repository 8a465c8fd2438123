"""Installs sbp_tf and its pinned, mutually compatible TensorFlow stack."""

import pathlib
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

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
    # tensorflow-datasets imports it on its download path but declares it
    # only for Pythons < 3.9.
    "importlib_resources>=5",
    # LiteRT, the TFLite runtime that verifies exports (tf.lite.Interpreter
    # is deprecated in its favour; sbp_tf falls back to it without LiteRT).
    "ai-edge-litert>=1.2,<3",
]

EXTRAS = {
    "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4"],
    # keras-tuner's BayesianOptimization needs scikit-learn.
    "tune": ["scikit-learn>=1.4,<2"],
}
EXTRAS["dev"] = EXTRAS["test"]

# The repository's configs/ and tools/ stay their only source; the wheel
# carries a copy under sbp_tf/_bundle (found by sbp_tf.bundle) so that
# --config=NAME and python -m sbp_tf.reproduce work from an installed package.
_BUNDLED = ("configs", "tools")
_BUNDLED_SUFFIXES = (".py", ".json")


class BuildPyWithBundle(build_py):
  """build_py that also copies configs/ and tools/ into sbp_tf/_bundle."""

  def run(self):
    super().run()
    target = pathlib.Path(self.build_lib) / "sbp_tf" / "_bundle"
    for folder in _BUNDLED:
      for src in sorted((_HERE / folder).rglob("*")):
        if (src.suffix in _BUNDLED_SUFFIXES and src.is_file() and
            "__pycache__" not in src.parts):
          dst = target / src.relative_to(_HERE)
          dst.parent.mkdir(parents=True, exist_ok=True)
          shutil.copyfile(src, dst)

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
    cmdclass={"build_py": BuildPyWithBundle},
    entry_points={
        "console_scripts": [
            "sbp-train=sbp_tf.train:run_main",
            "sbp-tune=sbp_tf.tune:run_main",
            "sbp-demo=sbp_tf.demo:run_main",
            "sbp-reproduce=sbp_tf.reproduce:run_main",
            "sbp-benchmark=sbp_tf.benchmark:run_main",
        ],
    },
    license="Apache-2.0",
)
