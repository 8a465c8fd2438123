"""The ``--help`` screen of the sbp_tf binaries (train, tune, demo, reproduce,
benchmark).

absl's own ``--help`` describes the ``__main__`` module, which for a console
script (``sbp-train``) is the entry-point shim: no description and no flags;
from ``python -m`` it omits the flags declared in :mod:`sbp_tf.cli` and exits
with status 1. This screen shows the binary's docstring (its purpose and
usage), then every flag the binary itself declares (those of sbp_tf's and
tools/' modules) plus absl's ``--verbosity``, and exits 0. ``--helpfull``
stays absl's complete list.
"""

import sys
import textwrap
from typing import List, Optional

from absl import flags

HELP_ARGS = ("--help", "-help", "-h", "--helpshort", "-helpshort", "-?")
# Flags of these modules (and of the binary's file itself) are the binary's.
_OWN_PREFIXES = ("sbp_tf", "tools")
_ALWAYS = ("verbosity",)  # absl's, but the way to see tracebacks and INFO


def wants_help(argv: List[str]) -> bool:
  """Whether ``argv`` asks for the help screen (before a ``--``)."""
  for arg in argv[1:]:
    if arg == "--":
      return False
    if arg in HELP_ARGS:
      return True
  return False


def _is_own(module: str) -> bool:
  return (module.split(".")[0] in _OWN_PREFIXES or module.endswith(".py") or
          module == sys.argv[0])


def _required(flag) -> bool:
  # absl's mark_flag_as_required registers a validator with this message.
  return any("must have a value other than None" in getattr(v, "message", "")
             for v in flag.validators)


# absl's own text for --verbosity says nothing about what it does here.
_HELP = {"verbosity": "Log level of absl/TensorFlow lines: 0 adds their INFO "
                      "lines, 1 also the traceback behind an error line "
                      "(default: warnings and errors only)."}


def _describe(flag) -> str:
  """``--name: help (default: x)`` wrapped to 79 columns, indented."""
  short = f" (-{flag.short_name})" if flag.short_name else ""
  default = (flag.default_as_str or "").strip("'\"")
  tail = []
  if flag.default is not None and default and flag.name not in _HELP:
    tail.append(f"default: {default}")
  if _required(flag):
    tail.append("required")
  text = f"--{flag.name}{short}: {_HELP.get(flag.name, flag.help)}" + (
      f" ({'; '.join(tail)})" if tail else "")
  return textwrap.fill(text, 79, initial_indent="  ",
                       subsequent_indent="      ")


def text(doc: Optional[str], values=None) -> str:
  """The help screen: ``doc`` (the binary's docstring), then its flags."""
  values = values or flags.FLAGS
  own = {}
  for module, module_flags in values.flags_by_module_dict().items():
    for flag in module_flags:
      if _is_own(module) or flag.name in _ALWAYS:
        own.setdefault(flag.name, flag)
  lines = [textwrap.dedent(doc or "").strip(), "", "Flags:"]
  lines += [_describe(own[name]) for name in sorted(own)]
  lines += ["", textwrap.fill(
      "--verbosity=1 (or SBP_TF_TRACEBACK=1) also prints the traceback of an "
      "error; --helpfull lists every flag, absl's too.", 79)]
  return "\n".join(lines).lstrip("\n") + "\n"


def show(doc: Optional[str]) -> None:
  """Prints the help screen to stdout and exits with status 0."""
  sys.stdout.write(text(doc))
  sys.stdout.flush()
  sys.exit(0)
