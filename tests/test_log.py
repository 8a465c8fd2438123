"""sbp_tf.log: one channel, visible by default, exactly once under absl."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code, **env_extra):
  # As a user's shell would start it (conftest sets TF_CPP_MIN_LOG_LEVEL).
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "SBP_TF_SET_TF_CPP_MIN_LOG_LEVEL")}
  env.update(PYTHONPATH=REPO, **env_extra)
  return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_say_prints_once_to_stdout_plain_and_under_absl():
  out = _run(
      "import sbp_tf.log as log\n"
      "log.say('plain')\n"
      "from absl import app, logging\n"
      "def main(argv):\n"
      "  logging.set_verbosity(logging.WARNING)\n"
      "  log.say('under absl')\n"
      "app.run(main)\n")
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == ["[sbp_tf] plain", "[sbp_tf] under absl"]
  assert "under absl" not in out.stderr


def test_configured_logging_receives_the_messages_when_asked():
  out = _run(
      "import logging, sys\n"
      "logging.basicConfig(stream=sys.stdout, format='ROOT %(message)s')\n"
      "import sbp_tf.log as log\n"
      "log.say('default')\n"
      "log.use_logging()\n"
      "log.say('hello')\n")
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == ["[sbp_tf] default", "ROOT hello"]


def test_a_libraries_root_warning_does_not_reroute_the_lines():
  # logging.warning() on an unconfigured root adds a stderr handler by
  # itself; sbp_tf's lines must stay on stdout, once.
  out = _run(
      "import logging\n"
      "import sbp_tf.log as log\n"
      "logging.warning('from some library')\n"
      "log.say('still here')\n")
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == ["[sbp_tf] still here"]
  assert "still here" not in out.stderr


def test_a_handler_added_to_the_sbp_tf_logger_keeps_stdout():
  # Tools (pytest's log capture) add handlers to the logger; sbp_tf's own
  # stdout line must stay, once.
  out = _run(
      "import logging, sys\n"
      "import sbp_tf.log as log\n"
      "h = logging.StreamHandler(sys.stderr)\n"
      "h.setFormatter(logging.Formatter('MINE %(message)s'))\n"
      "log.logger.addHandler(h)\n"
      "log.say('x')\n")
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == ["[sbp_tf] x"]
  assert "MINE x" in out.stderr


def test_import_hides_tensorflow_startup_notices_unless_opted_out():
  out = _run("import sbp_tf")
  assert out.returncode == 0
  assert "oneDNN" not in out.stderr and "InitializeLog" not in out.stderr
  out = _run("import sbp_tf", TF_CPP_MIN_LOG_LEVEL="0")
  assert "oneDNN" in out.stderr  # the user's level: TensorFlow as is
