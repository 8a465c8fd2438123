"""Hyperparameter search over pruning and training settings with keras-tuner.

Usage::

    python -m sbp_tf.tune --config=configs/cpu_fashion_mnist.py
        --workdir=/tmp/tune --tuner=random --max_trials=8
        --params=method,sparsity,lr     (one command)

Each trial is one ``sbp_tf.experiment.run`` (prune at init with the trial's
method and sparsity, then train) in ``<workdir>/tuner/trial_<id>/run``; the
objective is its ``test_accuracy``. Results: ``<workdir>/tune_results.md``
and ``tune_results.json``.

keras-tuner 1.4.8 targets Keras 3 while sbp_tf's default models are
tf_keras (Keras 2), so no Keras object crosses into keras-tuner:
``SBPHyperModel.build(hp)`` returns the trial's *config* (declaring the
hyperparameters), ``fit`` runs the experiment and returns a metrics dict,
and the tuner's ``run_trial`` is overridden to call them without
keras-tuner's Keras callbacks or saving. The same design serves both
frameworks: with ``--config.framework=keras3`` each trial is a Keras 3
``experiment.run`` (one device; its ``model.keras`` holds the masks).
"""

import sbp_tf  # noqa: F401  (selects Keras 2 before TensorFlow)

import importlib.util
import json
import os
import pathlib
from typing import Any, Dict, List, Optional, Sequence

from absl import app
from absl import flags

from sbp_tf import cli
from sbp_tf import files
from sbp_tf import markdown

# Hyperparameters that can be searched and the config field each one sets.
SPACE_FIELDS = {
    "method": "prune.method",
    "sparsity": "prune.sparsity",
    "sigma_b": "model.options.sigma_b",
    "lr": "train.lr",
    "weight_decay": "train.weight_decay",
}
DEFAULT_SPACE = dict(
    method=("sbp", "magnitude", "random", "grasp", "synflow"),
    sparsity=(0.9, 0.95, 0.98),
    sigma_b=(0.0, 0.5),          # uniform range
    lr=(1e-3, 0.3),              # log-uniform range
    weight_decay=(1e-5, 1e-3),   # log-uniform range
)
TUNERS = ("random", "hyperband", "bayesian")
OBJECTIVE = "test_accuracy"


def _kt():
  import keras_tuner  # pylint: disable=g-import-not-at-top
  return keras_tuner


def make_hypermodel(base_config, params: Sequence[str] = tuple(SPACE_FIELDS),
                    space: Optional[Dict[str, Any]] = None, strategy=None):
  """A ``keras_tuner.HyperModel`` whose trials are ``experiment.run`` calls.

  Args:
    base_config: the experiment config every trial starts from.
    params: which of ``method, sparsity, sigma_b, lr, weight_decay`` to search.
    space: optional overrides of ``DEFAULT_SPACE`` (choices for method and
      sparsity; (low, high) for the others).
    strategy: distribution strategy passed to ``experiment.run``.
  """
  kt = _kt()
  from sbp_tf import config as sbp_config  # pylint: disable=g-import-not-at-top
  unknown = [p for p in params if p not in SPACE_FIELDS]
  if unknown:
    raise ValueError(f"unknown tuning parameter(s) {unknown}. Fix: choose from "
                     f"{', '.join(SPACE_FIELDS)}.")
  space = dict(DEFAULT_SPACE, **(space or {}))
  base = sbp_config.resolve(base_config)

  class SBPHyperModel(kt.HyperModel):
    """build(hp) -> trial config; fit(hp, config) -> experiment metrics."""

    def build(self, hp):
      cfg = sbp_config.resolve(base)  # a copy
      values = {}
      if "method" in params:
        values["method"] = hp.Choice("method", list(space["method"]))
      if "sparsity" in params:
        values["sparsity"] = hp.Choice("sparsity",
                                       [float(s) for s in space["sparsity"]])
      if "sigma_b" in params:
        values["sigma_b"] = hp.Float("sigma_b", *map(float, space["sigma_b"]))
      if "lr" in params:
        values["lr"] = hp.Float("lr", *map(float, space["lr"]),
                                sampling="log")
      if "weight_decay" in params:
        values["weight_decay"] = hp.Float(
            "weight_decay", *map(float, space["weight_decay"]), sampling="log")
      for name, value in values.items():
        sbp_config.set_field(cfg, SPACE_FIELDS[name], value)
      return sbp_config.resolve(cfg)

    def fit(self, hp, model, *args, workdir=None, epochs=None, **kwargs):
      # ``model`` is the trial config from build(); the Keras model is built,
      # pruned and trained inside experiment.run.
      from sbp_tf import experiment  # pylint: disable=g-import-not-at-top
      cfg = model
      if epochs:
        cfg.train.epochs = int(epochs)
      metrics = experiment.run(cfg, workdir, strategy=strategy)
      return {k: float(v) for k, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}

  return SBPHyperModel(name="sbp_experiment")


def _tuner_class(kind):
  kt = _kt()
  if kind == "bayesian" and importlib.util.find_spec("sklearn") is None:
    raise ValueError(
        "tuner 'bayesian' needs scikit-learn, which is not installed. Fix: "
        "pip install scikit-learn (or keras-tuner[bayesian]), or use "
        "--tuner=random/hyperband.")
  base = {"random": kt.RandomSearch, "hyperband": kt.Hyperband,
          "bayesian": kt.BayesianOptimization}[kind]

  class ExperimentTuner(base):
    """keras-tuner search whose trials bypass its Keras-3 fit/save path."""

    def run_trial(self, trial, *args, **kwargs):
      hp = trial.hyperparameters
      cfg = self.hypermodel.build(hp)
      # Hyperband's budget per bracket; trials train from scratch (no warm
      # start from the parent trial's weights).
      epochs = hp.values.get("tuner/epochs")
      workdir = os.path.join(self.get_trial_dir(trial.trial_id), "run")
      return self.hypermodel.fit(hp, cfg, workdir=workdir, epochs=epochs)

    def save_model(self, trial_id, model, step=0):
      pass  # experiment.run already saved the trial's models in its workdir

  return ExperimentTuner


def search(config, workdir, *, tuner: str = "random", max_trials: int = 4,
           params: Sequence[str] = tuple(SPACE_FIELDS),
           space: Optional[Dict[str, Any]] = None, strategy=None,
           overwrite: bool = False) -> List[Dict[str, Any]]:
  """Runs a keras-tuner search; returns rows sorted by test accuracy.

  Each row: trial id, status, the hyperparameter values, and the trial's
  ``test_accuracy``, ``test_loss``, ``achieved_sparsity``. Also written to
  ``<workdir>/tune_results.{json,md}``. Objective: maximise test accuracy.

  Example::

      rows = search(cfg, "/tmp/tune", tuner="random", max_trials=2,
                    params=("method", "lr"))
  """
  if tuner not in TUNERS:
    raise ValueError(f"unknown tuner {tuner!r}. Fix: use one of "
                     f"{', '.join(TUNERS)}.")
  if max_trials < 1:
    raise ValueError(f"max_trials={max_trials}. Fix: pass an integer >= 1.")
  kt = _kt()
  tuner_cls = _tuner_class(tuner)
  hypermodel = make_hypermodel(config, params, space, strategy)
  objective = kt.Objective(OBJECTIVE, direction="max")
  kwargs = dict(hypermodel=hypermodel, objective=objective,
                directory=str(workdir), project_name="tuner",
                overwrite=overwrite, seed=int(config.seed))
  if tuner == "hyperband":
    kwargs.update(max_epochs=int(config.train.epochs), factor=3,
                  hyperband_iterations=1)
  else:
    kwargs.update(max_trials=max_trials)
  t = tuner_cls(**kwargs)
  t.search()
  rows = results(t)
  write_results(rows, workdir)
  return rows


def results(tuner) -> List[Dict[str, Any]]:
  """One row per trial: id, status, hyperparameters, final metrics."""
  rows = []
  for trial in tuner.oracle.trials.values():
    row = {"trial": trial.trial_id, "status": str(trial.status)}
    row.update({k: v for k, v in trial.hyperparameters.values.items()
                if not k.startswith("tuner/")})
    if "tuner/epochs" in trial.hyperparameters.values:
      row["epochs"] = trial.hyperparameters.values["tuner/epochs"]
    # The achieved sparsity gets its own column: "sparsity" is the target.
    for m, col in ((OBJECTIVE, OBJECTIVE), ("test_loss", "test_loss"),
                   ("sparsity", "achieved_sparsity"),
                   ("wall_time_s", "wall_time_s")):
      if trial.metrics.exists(m):
        row[col] = float(trial.metrics.get_last_value(m))
    rows.append(row)
  rows.sort(key=lambda r: -r.get(OBJECTIVE, float("-inf")))
  return rows


def write_results(rows, workdir) -> None:
  """Writes ``tune_results.json`` and a markdown table ``tune_results.md``."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  files.write_json(workdir / "tune_results.json", rows)
  keys = []
  for r in rows:
    keys += [k for k in r if k not in keys]

  def fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)

  files.write_text(workdir / "tune_results.md", markdown.table(
      keys, [[fmt(r.get(k, "")) for k in keys] for r in rows]))


_F = {}  # flag holders, defined by define_flags()


def define_flags():
  """Defines the binary's flags (at run time, so importing defines none)."""
  if _F:
    return
  cli.define_experiment_flags(
      _F, config_help="Base experiment config: a file, or the name of "
      "one in configs/ (e.g. cpu_fashion_mnist_ffnn).",
      workdir_help="Output folder of the search.",
      strategy_help="Distribution strategy of each trial.",
      overwrite_help="Start the search afresh (else resume it).")
  _F["tuner"] = flags.DEFINE_enum("tuner", "random", list(TUNERS),
                                  "Search algorithm.")
  _F["max_trials"] = flags.DEFINE_integer(
      "max_trials", 8, "Trials (random/bayesian; hyperband sizes itself "
      "from config.train.epochs).")
  _F["params"] = flags.DEFINE_list("params", list(SPACE_FIELDS),
                                   "Hyperparameters to search.")
  _F["methods"] = flags.DEFINE_list("methods", list(DEFAULT_SPACE["method"]),
                                    "Pruning methods to choose from.")
  _F["sparsities"] = flags.DEFINE_list(
      "sparsities", [str(s) for s in DEFAULT_SPACE["sparsity"]],
      "Sparsities to choose from.")


def _sparsities(values):
  """--sparsities as floats in [0, 1); one-line exit on anything else."""
  out = []
  for v in values:
    try:
      f = float(v)
    except ValueError:
      f = None
    if f is None or not 0 <= f < 1:
      cli.fail(f"--sparsities: {v!r} is not a sparsity in [0, 1). Fix: pass "
               "comma-separated numbers, e.g. --sparsities=0.9,0.95,0.98.")
    out.append(f)
  if not out:
    cli.fail("--sparsities is empty. Fix: pass e.g. --sparsities=0.9,0.95.")
  return tuple(out)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.quiet_absl_logs()
  from sbp_tf import config as sbp_config  # pylint: disable=g-import-not-at-top
  from sbp_tf import experiment  # pylint: disable=g-import-not-at-top
  from sbp_tf import strategy as sbp_strategy  # pylint: disable=g-import-not-at-top
  from sbp_tf.data.sources import DataNotFoundError  # pylint: disable=g-import-not-at-top
  from sbp_tf.training import workdir as wd_lib  # pylint: disable=g-import-not-at-top
  try:
    cfg = sbp_config.resolve(_F["config"].value)
  except (ValueError, TypeError) as e:
    cli.fail(str(e))
  space = dict(method=tuple(_F["methods"].value),
               sparsity=_sparsities(_F["sparsities"].value))
  strategy = sbp_strategy.get(_F["strategy"].value, tpu=_F["tpu"].value)
  try:
    # e.g. framework keras3 under a multi-replica strategy: one line, exit 1.
    experiment.check_strategy(cfg, strategy)
  except ValueError as e:
    cli.fail(str(e))
  try:
    rows = search(cfg, _F["workdir"].value, tuner=_F["tuner"].value,
                  max_trials=_F["max_trials"].value,
                  params=_F["params"].value, space=space, strategy=strategy,
                  overwrite=_F["overwrite"].value)
  except (wd_lib.WorkdirError, DataNotFoundError) as e:
    cli.fail(str(e))  # a user-fixable state: no traceback, exit 1
  # The binary's result, not log lines: the table and best trial on stdout.
  print((pathlib.Path(_F["workdir"].value) / "tune_results.md").read_text())
  print(json.dumps(rows[0] if rows else {}, indent=1, default=str))


def run_main():
  """Console-script entry point (``sbp-tune``)."""
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(__doc__))


if __name__ == "__main__":
  run_main()
