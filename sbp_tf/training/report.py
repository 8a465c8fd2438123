"""The workdir's per-layer report at init: ``<stem>.json``, ``.md``, ``.png``.

One schema everywhere: the rows of :meth:`sbp_tf.pruning.Masks.report`
(``layer``, ``shape``, ``weights``, ``kept``, ``density = kept / weights``,
``collapsed``) and its :meth:`~sbp_tf.pruning.Report.summary` (totals,
``sparsity``, the whole model's ``model_sparsity``, the list of
``collapsed`` layers) — the same as ``prune(...).report``.

Usage::

    summary = write_reports(masks, "/tmp/run", "prune_report")
    summary["density"], summary["collapsed"]
"""

import pathlib
from typing import Dict

from sbp_tf import log
from sbp_tf.pruning.masks import Masks


def write_reports(masks, directory, stem="prune_report", report=None) -> Dict:
  """Writes ``<stem>.json``, ``.md`` and ``.png`` of ``report`` (default
  ``masks.report()``; pass ``prune(...).report`` for its rows of unpruned
  layers and the whole model's sparsity) atomically; the plot is skipped
  with a warning where matplotlib cannot draw. Returns the summary."""
  directory = pathlib.Path(directory)
  rep = report if report is not None else (
      masks if isinstance(masks, Masks) else Masks(masks)).report()
  rep.to_json(directory / f"{stem}.json")
  rep.to_markdown(directory / f"{stem}.md")
  try:
    rep.to_png(str(directory / f"{stem}.png"),
               title=f"per-layer density, total {rep.density:.4f}")
  except Exception as e:  # pylint: disable=broad-except
    # The plot is a convenience; a headless box without fonts must not fail.
    log.logger.warning("could not draw %s.png: %s", stem, e)
  return rep.summary()
