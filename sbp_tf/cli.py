"""Shared command-line plumbing of the sbp_tf binaries (train, tune, demo,
reproduce, benchmark).

User mistakes on the command line (a missing or broken --config file, a
mistyped --config.<field>, an unknown flag, a bad flag value) end the
binary with one ``[sbp_tf] error: ...`` line naming the problem and the
fix, exit status 1, and no traceback (``--verbosity=1`` or
``SBP_TF_TRACEBACK=1`` adds it). ``--config`` takes a file or a config's
name (``cpu_fashion_mnist_ffnn``, ``configs/cpu_fashion_mnist_ffnn.py``
from any folder; :mod:`sbp_tf.bundle`), and ``--help`` shows the
binary's docstring and flags (:mod:`sbp_tf.cli_help`).

The flags every binary shares are declared here once: ``--workdir``
(:func:`define_workdir_flag`; train, tune, tools/reproduce.py) and
``--config``, ``--strategy``, ``--tpu``, ``--overwrite``
(:func:`define_experiment_flags`; train, tune).

Usage::

    _F = {}
    def define_flags():
      cli.define_experiment_flags(_F, workdir_help="Output folder of the run.")
      ...  # the binary's own flags
    app.run(main, flags_parser=cli.flags_parser(__doc__))
    # in main(): cli.quiet_absl_logs()
"""

import ast
import functools
import os
import pathlib
import re
import sys
import traceback
from typing import List, Optional

from absl import flags
from absl import logging

from sbp_tf import bundle
from sbp_tf import cli_help


# Set to 1 to see the traceback behind an error line (as --verbosity=1 does).
TRACEBACK_ENV = "SBP_TF_TRACEBACK"


def wants_traceback() -> bool:
  """Whether the user asked for tracebacks: ``$SBP_TF_TRACEBACK`` set (not
  0) or absl's ``--verbosity`` at 1 or more."""
  if os.environ.get(TRACEBACK_ENV, "0") not in ("", "0"):
    return True
  verbosity = flags.FLAGS["verbosity"] if "verbosity" in flags.FLAGS else None
  return bool(verbosity is not None and verbosity.present and
              verbosity.value >= 1)


def fail(message: str) -> None:
  """Exits with status 1 after printing ``[sbp_tf] error: <message>``.

  When the user asked for tracebacks (:func:`wants_traceback`), the
  exception being handled, if any, is printed first.
  """
  if sys.exc_info()[0] is not None and wants_traceback():
    traceback.print_exc()
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
    return (f"config file {str(path)!r} does not exist and names no config. "
            "Fix: pass a config file or one of the names "
            f"{', '.join(bundle.config_names())} "
            "(e.g. --config=cpu_fashion_mnist_ffnn).")
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


def _config_fields(name: str) -> List[str]:
  """Dotted config fields (``train.epochs``) ending in ``name``."""
  from sbp_tf import config as sbp_config  # pylint: disable=g-import-not-at-top
  out = []

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, prefix + k + ".")
      elif (prefix + k).endswith(name) and (
          prefix + k == name or (prefix + k)[-len(name) - 1] == "."):
        out.append(prefix + k)
  walk(sbp_config.defaults().to_dict(), "")
  return sorted(out)


def _config_default(field: str):
  from sbp_tf import config as sbp_config  # pylint: disable=g-import-not-at-top
  d = sbp_config.defaults().to_dict()
  for part in field.split("."):
    if not isinstance(d, dict) or part not in d:
      return None
    d = d[part]
  return d


def flag_error(text: str) -> str:
  """The one-line message (problem, then ``Fix:``) for absl's flag-parsing
  error ``text``: an unknown flag (``--epochs``: did you mean
  ``--config.train.epochs``?), a value of the wrong type or outside a
  flag's choices, or a required flag left out."""
  text = " ".join(text.split())
  m = re.match(r"Unknown command line flag '([^']+)'"
               r"(?:\. Did you mean: (.+?) \?)?$", text)
  if m:
    name, near = m.group(1), m.group(2)
    fields = _config_fields(name.replace("-", "_"))
    if fields:
      fix = ("did you mean " + " or ".join(f"--config.{f}" for f in fields)
             + "? Config fields are set with --config.<field>=<value>.")
    elif near:
      fix = f"did you mean --{near.split(',')[0].strip()}?"
    else:
      fix = ("remove it or correct its name (--helpshort lists the flags; "
             "config fields are --config.<field>=<value>).")
    return f"unknown flag --{name}. Fix: {fix}"
  m = re.match(r"flag --([\w.-]+)=(.*?): (.*)$", text)
  if not m:
    return f"{text}. Fix: correct the command line (--helpshort lists flags)."
  name, why = m.group(1), m.group(3).rstrip(".")
  default = (_config_default(name[len("config."):])
             if name.startswith("config.") else None)
  if "must have a value other than None" in why:
    fix = f"pass --{name}=<value>."
  elif "should be one of" in why:
    fix = f"pass one of those values as --{name}=<value>."
  elif default is not None and not isinstance(default, (dict, list, tuple)):
    fix = (f"pass a {type(default).__name__} value, e.g. the default: "
           f"--{name}={default}.")
  else:
    fix = f"pass a valid value for --{name} (--helpshort describes it)."
  return f"bad value for --{name}: {why}. Fix: {fix}"


def _config_by_name(argv: List[str], value: str) -> List[str]:
  """``argv`` with a --config given by name (``NAME``, ``configs/NAME.py``)
  replaced by the config file's path; unchanged when it is a file."""
  path, sep, args = value.partition(":")
  if pathlib.Path(value).is_file() or pathlib.Path(path).is_file():
    return argv
  found = bundle.find_config(path)
  if found is None:
    return argv
  new = f"{found}{sep}{args}"
  out = list(argv)
  for i in range(len(out) - 1, 0, -1):  # the last one wins, as parsed
    if out[i] == f"--config={value}":
      out[i] = f"--config={new}"
      break
    if out[i] == value and out[i - 1] == "--config":
      out[i] = new
      break
  return out


def flags_parser(doc: Optional[str]):
  """:func:`parse_flags` for a binary whose ``--help`` shows ``doc``."""
  return functools.partial(parse_flags, doc=doc)


def parse_flags(argv: List[str], doc: Optional[str] = None) -> List[str]:
  """``app.run``'s flags parser: one-line errors instead of tracebacks, a
  config found by name, and ``--help`` (:mod:`sbp_tf.cli_help`) showing
  ``doc`` and the binary's flags, exit status 0."""
  if cli_help.wants_help(argv):
    cli_help.show(doc)
  value = _config_value(argv)
  if value is not None:
    argv = _config_by_name(argv, value)
    value = _config_value(argv)
    problem = check_config_file(value)
    if problem:
      fail(problem)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # an unknown flag or a bad value: one line
    fail(flag_error(str(e)))
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
