"""The package selects Keras 2 (tf_keras) and refuses Keras 3 loudly."""

import os
import subprocess
import sys

import pytest

from sbp_tf.compat import keras, tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tf_keras_is_keras_2():
  assert keras.__name__.startswith("tf_keras")
  assert tf.keras is keras
  import tf_keras  # pylint: disable=g-import-not-at-top
  assert tf_keras.__version__.startswith("2.")


def _run(code, env_extra):
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env.update(env_extra)
  env["PYTHONPATH"] = REPO
  return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_importing_sbp_tf_first_selects_tf_keras_without_env_var():
  out = _run("import sbp_tf.compat as c; print(c.keras.__name__)", {})
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip().startswith("tf_keras")


@pytest.mark.slow
def test_keras3_resolved_before_sbp_tf_gives_clear_error():
  # tf.keras is resolved lazily on first access; once it became Keras 3 it
  # stays Keras 3, which tfmot cannot wrap.
  out = _run("import tensorflow as tf; tf.keras.layers; import sbp_tf.compat",
             {})
  assert out.returncode != 0
  assert "TF_USE_LEGACY_KERAS=1" in out.stderr


def test_explicit_keras3_request_is_refused():
  out = _run("import sbp_tf", {"TF_USE_LEGACY_KERAS": "0"})
  assert out.returncode != 0
  assert "needs Keras 2 (tf_keras)" in out.stderr
