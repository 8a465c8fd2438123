"""Experiment 6: critical sparsity, layer collapse and connectivity at init.

No training. For one architecture, one method and one seed: build the model
(``sbp_tf.models``), score it once with ``sbp_tf.pruning.prune`` on real
data, then for each target sparsity ``s`` take the global top
``round((1 - s) N)`` of the scores (``pruning.select``, the same
selection ``prune`` makes) and record

* the fully pruned layers (``pruning.diagnose``),
* whether every output is still reachable from the input
  (``pruning.diagnose``),
* the per-layer density ``kept_l / size_l``;

and the critical sparsity of the scores (``pruning.critical_sparsity``:
the largest sparsity that prunes no layer entirely). Iterative methods
(SynFlow: ``rounds > 1``) are pruned afresh from the same init for every
target with their schedule; their masks at each target come from different
(last-round) scores, so their critical sparsity is bracketed by the same
cells the row prints: ``critical_bracket = (lo, hi]`` with ``lo`` the largest
target that prunes no layer and ``hi`` the smallest larger target that does
(1.0 when none does), and ``critical_sparsity = lo``. The one-shot scores'
value stays in ``one_shot_critical_sparsity`` for reference.

Usage::

    from tools import reproduce_collapse
    m = reproduce_collapse.run(dict(model="resnet32", options={}, dataset=
        "cifar10", method="sbp", targets=[0.9, 0.99], batch_size=128,
        num_batches=1, synflow_rounds=20, seed=0, arch="ResNet32"), "/tmp/c")
    m["critical_sparsity"], m["targets"]["99%"]["collapsed_layers"]
"""

import json
import pathlib
import time
from typing import Any, Dict


def _pct(s: float) -> str:
  return f"{100 * s:g}%"


def critical_bracket(targets, collapsed_by_target):
  """``(lo, hi)``: the critical sparsity bracketed by iterative-prune cells.

  ``lo`` = the largest target below the first collapsing one that prunes no
  layer entirely (0.0 if the smallest target already collapses a layer);
  ``hi`` = the smallest target that collapses a layer (1.0 if none does).
  """
  lo, hi = 0.0, 1.0
  for t in sorted(targets):
    if collapsed_by_target[_pct(t)]:
      hi = t
      break
    lo = t
  return (float(lo), float(hi))


def _data(cfg):
  from sbp_tf import data  # pylint: disable=g-import-not-at-top
  data_dir = None
  if cfg["dataset"] == "cifar10":
    # One batch of the class-sorted offline copy would be one class.
    from tools import reproduce_data  # pylint: disable=g-import-not-at-top
    data_dir = reproduce_data.mixed_cifar10()
  ds, info = data.load(cfg["dataset"], "train", batch_size=cfg["batch_size"],
                       shuffle=True, augment=False, seed=cfg["seed"],
                       limit=cfg["batch_size"] * cfg["num_batches"],
                       data_dir=data_dir)
  return ds, info


def run(cfg: Dict[str, Any], run_dir) -> Dict[str, Any]:
  """Scores one (architecture, method, seed) and writes ``collapse.json``.

  Returns:
    ``{"critical_sparsity", "critical_layer", "num_layers",
    "prunable_weights", "targets": {"99%": {"sparsity", "collapsed_layers",
    "collapsed", "connected", "reachable_fraction"}}, "layer_density":
    {"99%": [...]}, "layer_keys", "wall_time_s"}``.
  """
  t0 = time.time()
  # pylint: disable=g-import-not-at-top
  from sbp_tf import files, models, pruning
  from sbp_tf.compat import keras
  # pylint: enable=g-import-not-at-top
  run_dir = pathlib.Path(run_dir)
  run_dir.mkdir(parents=True, exist_ok=True)
  ds, info = _data(cfg)
  keras.utils.set_random_seed(cfg["seed"])
  model = models.build(cfg["model"], info.num_classes,
                       tuple(info.input_shape), **cfg["options"])
  targets = sorted(cfg["targets"])
  keys = [t.key for t in pruning.prunable_targets(model)]
  common = dict(data=ds, num_batches=cfg["num_batches"], seed=cfg["seed"])
  # One-shot scores: critical sparsity, and the masks of one-shot methods.
  scores = pruning.score(model, cfg["method"], **common)
  crit = pruning.critical_sparsity(scores, scores.keep)
  iterative = cfg["method"] == "synflow" and cfg.get("synflow_rounds", 1) > 1
  init = model.get_weights()
  out_t, dens = {}, {}
  for t in targets:
    if iterative:  # pruned afresh from the same init for every target
      masks = pruning.prune(model, cfg["method"], t, on_collapse="ignore",
                            rounds=cfg["synflow_rounds"], **common).masks
      model.set_weights(init)
    else:
      masks = pruning.select(scores, t)
    d = pruning.diagnose(model, masks)
    out_t[_pct(t)] = dict(sparsity=float(masks.sparsity()),
                          collapsed_layers=len(d["collapsed"]),
                          collapsed=d["collapsed"],
                          connected=bool(d["connected"]),
                          reachable_fraction=float(d["reachable_fraction"]))
    ld = masks.layer_density()
    dens[_pct(t)] = [float(ld[k]) for k in keys]
  crit_s, crit_layer, bracket = float(crit.sparsity), crit.bottleneck, None
  if iterative:
    bracket = critical_bracket(targets, {_pct(t): out_t[_pct(t)][
        "collapsed_layers"] for t in targets})
    crit_s, crit_layer = bracket[0], None
  metrics = dict(
      arch=cfg["arch"], method=cfg["method"], seed=cfg["seed"],
      critical_sparsity=crit_s, critical_layer=crit_layer,
      critical_bracket=bracket,
      one_shot_critical_sparsity=float(crit.sparsity),
      num_layers=len(keys), layer_keys=keys,
      prunable_weights=int(sum(scores[k].size for k in keys)),
      rounds=(cfg["synflow_rounds"] if iterative else 1),
      targets=out_t, layer_density=dens, wall_time_s=time.time() - t0)
  files.write_text(run_dir / "collapse.json", json.dumps(metrics, indent=1))
  return metrics
