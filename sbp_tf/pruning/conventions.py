"""The conventions a prune depends on beyond its formula, as named options.

Methods that rank every weight identically can still give different masks
through three choices the papers leave open or that implementations make
differently (measured against the reference implementation
ganguli-lab/Synaptic-Flow in issue 26; the table with the reasons is in
docs/pruning.md, "Conventions"):

* ``scoring_mode`` (``prune``/``score``): the forward pass the data-driven
  scores (SNIP/SBP, GraSP, OBD) differentiate:

  - ``"training"`` (default): as in ``fit``: batch norm normalizes by the
    scoring batch's own statistics, dropout is active;
  - ``"inference"``: batch norm uses its moving statistics (at init mean 0,
    variance 1, so it only scales by ``1 / sqrt(1 + eps)``), dropout off:
    the reference's default (``model.eval()``).

* ``count_rule`` (``prune``/``select``): how many of ``n`` weights a round
  at density ``d`` keeps (globally, or per layer with
  ``scope='layerwise'``):

  - ``"round"`` (default): ``round(d * n)``, the nearest count to the
    requested density;
  - ``"floor_pruned"``: ``n - int((1 - d) * n)``: the pruned count is
    truncated, as the reference does (``k = int((1 - d) * n)`` removed).

* ``biases`` (a SynFlow option, ``prune(model, "synflow", ..., biases=)``):
  what the linearized network ``f_|W|`` does with biases and batch norm:

  - ``"zero"`` (default): every bias 0 and batch norm ``x / sqrt(1 + eps)``,
    so ``R = sum_paths prod |w|`` (Tanaka et al. 2020's formula);
  - ``"abs"``: every bias ``|b|`` and every batch-norm parameter and moving
    statistic by its absolute value, batch norm in inference mode: the
    reference's linearization (it takes ``|p|`` of its whole state dict).

Usage::

    from sbp_tf.pruning import conventions
    conventions.check_scoring_mode("inference")
    conventions.kept_count(10, 0.25, "floor_pruned")   # 3 (round: 2)
"""

SCORING_MODES = ("training", "inference")
COUNT_RULES = ("round", "floor_pruned")
SYNFLOW_BIASES = ("zero", "abs")


def check_scoring_mode(mode) -> None:
  """Raises ValueError unless ``mode`` is one of :data:`SCORING_MODES`."""
  if mode not in SCORING_MODES:
    raise ValueError(
        f"scoring_mode={mode!r} is not known. Fix: use 'training' (batch "
        "norm on the scoring batch's statistics, the default) or "
        "'inference' (moving statistics, dropout off: the reference "
        "implementation's default).")


def check_count_rule(rule) -> None:
  """Raises ValueError unless ``rule`` is one of :data:`COUNT_RULES`."""
  if rule not in COUNT_RULES:
    raise ValueError(
        f"count_rule={rule!r} is not known. Fix: use 'round' (keep "
        "round((1 - s) * N), the default) or 'floor_pruned' (keep "
        "N - int(s * N), the reference implementation's).")


def check_biases(biases) -> None:
  """Raises ValueError unless ``biases`` is one of :data:`SYNFLOW_BIASES`."""
  if biases not in SYNFLOW_BIASES:
    raise ValueError(
        f"synflow: biases={biases!r} is not known. Fix: use 'zero' (biases "
        "0, batch norm the identity: Tanaka et al.'s formula, the default) "
        "or 'abs' (|b| and |batch-norm parameters|: the reference "
        "implementation's).")


def training_flag(mode: str) -> bool:
  """The ``training`` argument of the model's call for ``mode``."""
  check_scoring_mode(mode)
  return mode == "training"


def kept_count(n: int, density: float, rule: str = "round") -> int:
  """How many of ``n`` weights survive at ``density`` under ``rule``.

  ``"round"``: ``round(density * n)`` (Python's round, ties to even);
  ``"floor_pruned"``: ``n - int((1 - density) * n)``.
  """
  check_count_rule(rule)
  n = int(n)
  if rule == "round":
    return int(round(float(density) * n))
  return n - int((1.0 - float(density)) * n)
