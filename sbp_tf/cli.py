"""Shared command-line plumbing of the sbp_tf binaries (train, tune, reproduce).

User mistakes on the command line (a missing or broken --config file, a
mistyped --config.<field>, a bad flag value) end the binary with one
``[sbp_tf] error: ...`` line naming the problem and the fix, exit status 1,
and no traceback.

The flags every binary shares are declared here once: ``--workdir``
(:func:`define_workdir_flag`; train, tune, tools/reproduce.py) and
``--config``, ``--strategy``, ``--tpu``, ``--overwrite``
(:func:`define_experiment_flags`; train, tune).

Usage::

    _F = {}
    def define_flags():
      cli.define_experiment_flags(_F, workdir_help="Output folder of the run.")
      ...  # the binary's own flags
    app.run(main, flags_parser=cli.parse_flags)
    # in main(): cli.quiet_absl_logs()
"""

import ast
import pathlib
import re
import sys
from typing import List, Optional

from absl import flags
from absl import logging


def fail(message: str) -> None:
  """Exits with status 1 after printing ``[sbp_tf] error: <message>``."""
  sys.exit(f"[sbp_tf] error: {message}")


def _config_value(argv: List[str]) -> Optional[str]:
  """The --config file argument in ``argv`` (last one wins), or None."""
  value = None
  for i, arg in enumerate(argv[1:], start=1):
    if arg.startswith("--config="):
      value = arg[len("--config="):]
    elif arg == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def check_config_file(value: str) -> Optional[str]:
  """Why the config file ``value`` (``path[:args]``) cannot load, or None.

  Checks, without running it, that the file exists, is valid Python, and
  defines (or imports) ``get_config``.
  """
  path = pathlib.Path(value)
  if not path.is_file() and ":" in value:  # config_flags' path:args form
    path = pathlib.Path(value.split(":", 1)[0])
  if not path.exists():
    return (f"config file {str(path)!r} does not exist. Fix: pass an "
            "existing file, e.g. --config=configs/cpu_fashion_mnist.py.")
  if not path.is_file():
    return (f"config file {str(path)!r} is a folder, not a file. Fix: pass a "
            "file, e.g. --config=configs/cpu_fashion_mnist.py.")
  try:
    tree = ast.parse(path.read_text(), filename=str(path))
  except SyntaxError as e:
    return (f"config file {str(path)!r} is not valid Python: {e.msg} "
            f"(line {e.lineno}). Fix: correct the file.")
  except (OSError, UnicodeDecodeError, ValueError) as e:
    return f"config file {str(path)!r} cannot be read ({e}). Fix: check it."
  defined = set()  # every name the file binds anywhere (lenient on purpose)
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      defined.add(node.name)
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
      defined.add(node.id)
    elif isinstance(node, ast.alias):
      defined.add((node.asname or node.name).split(".")[0])
  if "get_config" not in defined:
    return (f"config file {str(path)!r} defines no get_config(). Fix: add "
            "`def get_config(): return config` (see configs/*.py).")
  return None


def _unknown_field(error: Exception, argv: List[str]) -> Optional[str]:
  """The one-line message for a mistyped --config.<field>, or None."""
  text = str(error).replace("\\n", "\n").replace("\\'", "'").strip("'\"")
  m = re.match(r"'?([\w-]+)'?[ \t]*(?:\n(.*))?$", text, re.S)
  if not m:
    return None
  key, hint = m.group(1), (m.group(2) or "").strip()
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  hit = [a for a in overrides
         if key in a.split("=", 1)[0][len("--config."):].split(".")]
  if not hit:
    return None
  hint = f" {hint}" if hint else ""
  return (f"unknown field {hit[0]}: the config has no field {key!r}.{hint} "
          "Fix: correct the field name (see sbp_tf/config.py defaults()).")


def parse_flags(argv: List[str]) -> List[str]:
  """``app.run``'s flags parser: one-line errors instead of tracebacks."""
  value = _config_value(argv)
  if value is not None:
    problem = check_config_file(value)
    if problem:
      fail(problem)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # absl's own report (as app.run gives it)
    text = str(e)
    sys.stderr.write("FATAL Flags parsing error: " + (
        text if "\n" not in text else "\n" + text) + "\n")
    sys.stderr.write("Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)
  except Exception as e:  # pylint: disable=broad-except
    # Loading or overriding the config failed: say which and why, one line.
    msg = _unknown_field(e, argv) if isinstance(e, (AttributeError,
                                                    KeyError)) else None
    if msg is None:
      first = (str(e).strip().splitlines() or [""])[0]
      where = f" while loading --config={value}" if value else ""
      msg = (f"{type(e).__name__}{where}: {first}. Fix: correct the config "
             "file or the --config.<field> flags.")
    fail(msg)
  return argv  # unreachable


def define_workdir_flag(help_text: str):
  """Declares the required ``--workdir`` flag; returns its holder."""
  holder = flags.DEFINE_string("workdir", None, help_text)
  flags.mark_flag_as_required("workdir")
  return holder


def define_experiment_flags(holder: dict, *, config_help: str,
                            workdir_help: str, strategy_help: str,
                            overwrite_help: str,
                            lock_config: bool = False) -> None:
  """Declares the flags of binaries that run experiments (train, tune).

  Adds the holders of ``--config`` (required, with ``--config.<field>``
  overrides), ``--workdir`` (required), ``--strategy`` (one of
  ``sbp_tf.strategy.NAMES``), ``--tpu`` and ``--overwrite`` to ``holder``
  under those names. Call at run time, not import time, so that importing a
  binary's module defines no flags.

  Args:
    holder: dict receiving the flag holders.
    config_help, workdir_help, strategy_help, overwrite_help: the binary's
      help text of each flag.
    lock_config: forbid adding fields to the config (ml_collections).
  """
  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags
  from sbp_tf import strategy as sbp_strategy
  holder["config"] = config_flags.DEFINE_config_file(
      "config", None, config_help, lock_config=lock_config)
  holder["workdir"] = define_workdir_flag(workdir_help)
  holder["strategy"] = flags.DEFINE_enum(
      "strategy", "auto", list(sbp_strategy.NAMES), strategy_help)
  holder["tpu"] = flags.DEFINE_string("tpu", None,
                                      "TPU name or grpc:// address.")
  holder["overwrite"] = flags.DEFINE_bool("overwrite", False, overwrite_help)
  flags.mark_flag_as_required("config")


def quiet_absl_logs() -> None:
  """Shows absl/TensorFlow log lines from WARNING up, unless --verbosity
  (-v) was given.

  TF's per-checkpoint/collective INFO lines drown the progress output.
  sbp_tf's own lines (sbp_tf.log) are not affected.
  """
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
