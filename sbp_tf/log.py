"""sbp_tf's one output channel: the ``sbp_tf`` logger.

Library code reports through :func:`say` (the few lines a person watching a
run needs: pruning done, resume, data source, done) or through ``logger``
for anything else. Nothing in the library calls ``print`` for messages.

Visible by default: when neither the ``sbp_tf`` logger nor the root logger
has a handler, :func:`say` attaches one that writes ``[sbp_tf] <msg>`` to
standard output. absl binaries (``app.run``) put absl's handler on the root
logger; it is not counted as a user's handler, so sbp_tf's lines still show
once, on stdout, with the same prefix, and not a second time in absl's format.
The root logger's configuration is read at the first message (later, a
library's own ``logging.warning`` call configures it on stderr by itself).
Other sbp_tf loggers (``sbp_tf.<module>``) show their warnings there too;
their INFO lines need logging configured. Once the user configures logging (``logging.basicConfig``, a handler on
``sbp_tf``), the messages go there instead.

Usage::

    from sbp_tf import log
    log.say("pruned resnet32 to sparsity 0.9")    # [sbp_tf] pruned ...
    log.logger.setLevel(logging.WARNING)          # silence sbp_tf's lines
"""

import logging
import sys

logger = logging.getLogger("sbp_tf")
# say() lines are INFO; shown unless the user sets another level on "sbp_tf"
# (the root logger's default WARNING would otherwise drop them).
if logger.level == logging.NOTSET:
  logger.setLevel(logging.INFO)

PREFIX = "[sbp_tf] "


class _StdoutHandler(logging.StreamHandler):
  """Writes to the *current* ``sys.stdout``, as ``print`` did (so output
  redirected after import, e.g. by ``contextlib.redirect_stdout``, follows)."""

  def __init__(self):
    super().__init__(sys.stdout)

  @property
  def stream(self):
    return sys.stdout

  @stream.setter
  def stream(self, value):
    del value  # always the current sys.stdout


def _shown_by_default(record) -> bool:
  # say() lines and warnings; modules' own INFO lines
  # (logging.getLogger(__name__)) stay hidden until logging is configured,
  # as the stdlib's unconfigured default does.
  return record.name == logger.name or record.levelno >= logging.WARNING


_DEFAULT = _StdoutHandler()
_DEFAULT.setFormatter(logging.Formatter(PREFIX + "%(message)s"))
_DEFAULT.addFilter(_shown_by_default)


def _is_absl(handler) -> bool:
  absl_logging = sys.modules.get("absl.logging")
  return absl_logging is not None and isinstance(handler,
                                                 absl_logging.ABSLHandler)


_ROOT_CHECKED = []  # the root logger's configuration, read at the first say()


def _user_configured() -> bool:
  """Whether anyone but sbp_tf and absl put a handler on ``sbp_tf``/root.

  The root logger is read once, at the first message: later, any library's
  module-level ``logging.warning(...)`` call configures the root logger by
  itself (``logging.basicConfig`` on stderr), which is not the user's choice.
  """
  if any(h is not _DEFAULT for h in logger.handlers):
    return True
  if not _ROOT_CHECKED:
    _ROOT_CHECKED.append(any(not _is_absl(h) for h in logging.root.handlers))
  return _ROOT_CHECKED[0]


def _sync_default_handler() -> None:
  """Attaches the stdout handler while logging is unconfigured, else detaches.

  Checked at every message, not at import: absl binaries add their root
  handler in ``app.run``, after sbp_tf is imported.
  """
  if _user_configured():
    if _DEFAULT in logger.handlers:
      logger.removeHandler(_DEFAULT)
      logger.propagate = True
  elif _DEFAULT not in logger.handlers:
    logger.addHandler(_DEFAULT)
    # absl's root handler would print each line a second time (to stderr).
    logger.propagate = False


if not any(not _is_absl(h) for h in logging.root.handlers):
  logger.addHandler(_DEFAULT)
  logger.propagate = False


def say(msg: str) -> None:
  """Logs ``msg`` at INFO on the ``sbp_tf`` logger (see the module doc)."""
  _sync_default_handler()
  logger.info(msg)


def fit_verbosity(requested: int = 2) -> int:
  """Keras ``fit`` verbosity for ``requested``, upgraded to a progress bar
  in a terminal.

  One line per epoch (2) suits log files; in a terminal Keras' bar (1) shows
  the same end-of-epoch line plus progress within the epoch, so 2 becomes 1
  when stdout is a terminal. 0 (silent) and 1 are kept.
  """
  isatty = getattr(sys.stdout, "isatty", None)
  if requested == 2 and isatty is not None and isatty():
    return 1
  return requested
