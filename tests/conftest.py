"""Test-wide set-up: Keras 2 before TensorFlow, a data-folder fixture, the
``path`` fixture (a test taking it runs once per Keras path), and the opt-in
``heavy`` marker (skipped unless ``SBP_TF_HEAVY_TESTS=1``)."""

import os
import pathlib

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import tensorflow as tf  # noqa: E402

assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(
    os.environ.get("SBP_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data():
  """The offline real-data folder (../shared/data); skips when it is absent."""
  if not (SHARED_DATA / "README.md").exists():
    pytest.skip(f"real data folder {SHARED_DATA} is absent (set SBP_SHARED_DATA)")
  return SHARED_DATA


HEAVY = os.environ.get("SBP_TF_HEAVY_TESTS") == "1"


def pytest_collection_modifyitems(config, items):
  """Skips ``@pytest.mark.heavy`` tests (minutes each on 2 cores) unless
  ``SBP_TF_HEAVY_TESTS=1``: the default run stays within ~20 minutes."""
  del config
  if HEAVY:
    return
  skip = pytest.mark.skip(reason=(
      "heavy test (minutes on 2 cores), off by default. Run it with "
      "SBP_TF_HEAVY_TESTS=1 python3 -m pytest -m heavy"))
  for item in items:
    if "heavy" in item.keywords:
      item.add_marker(skip)


@pytest.fixture(params=("tf_keras", "keras3"))
def path(request):
  """One Keras path (``paths_testlib.Path``): a test taking it runs once on
  tf_keras and once on Keras 3, as Keras runs its suite per backend."""
  import paths_testlib  # pylint: disable=import-outside-toplevel
  return paths_testlib.Path(request.param)
