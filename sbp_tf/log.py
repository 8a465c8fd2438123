"""sbp_tf's one output channel: the ``sbp_tf`` logger.

Library code reports through :func:`say` (the few lines a person watching a
run needs: pruning done, resume, data source, done) or through ``logger``
for anything else. Nothing in the library calls ``print`` for messages.

Visible by default, like Keras' own progress output: the ``sbp_tf``
logger has a handler that writes ``[sbp_tf] <msg>`` to standard output and
does not propagate, so each line shows exactly once whatever the root logger
holds (absl's handler in ``app.run`` binaries, a handler the standard
library adds by itself on a library's ``logging.warning`` call, pytest's).
To route sbp_tf's lines into your own logging set-up instead, call
:func:`use_logging` (handlers you add to the ``sbp_tf`` logger receive the
lines too, beside stdout; tools such as pytest add theirs there). Other sbp_tf loggers (``sbp_tf.<module>``)
show their warnings there too; their INFO lines need logging configured.

Usage::

    from sbp_tf import log
    log.say("pruned resnet32 to sparsity 0.9")    # [sbp_tf] pruned ...
    log.logger.setLevel(logging.WARNING)          # silence sbp_tf's lines
    log.use_logging()                             # into your handlers
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


def use_logging() -> None:
  """Sends sbp_tf's lines to the logging configuration (root handlers)
  instead of stdout: removes the default handler and propagates."""
  logger.removeHandler(_DEFAULT)
  logger.propagate = True


logger.addHandler(_DEFAULT)
logger.propagate = False  # shown once, whatever the root logger holds


def say(msg: str) -> None:
  """Logs ``msg`` at INFO on the ``sbp_tf`` logger (see the module doc)."""
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
