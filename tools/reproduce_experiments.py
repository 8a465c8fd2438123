"""The paper's studies as grids of cells, at several scales.

Scales: smoke (seconds, tests), cpu (real offline data, 8,000 training
images, every experiment within about an hour on 2 cores), cpu_full (tables
1, 2 and 9 only: all 50,000 images for 8 epochs at width x0.25, where the
dense ResNet32 passes 70%; about 7 minutes a cell on 2 cores), gpu (the
extreme study), paper (the published setting).

A cell is one (row, column, seed) of a table: for the training studies one
``sbp_tf.experiment.run`` call with a full experiment config; for the
layer-collapse study (no training) one scoring of one architecture with one
method. ``build(name, scale, seeds)`` returns a :class:`Spec` holding the
cells and the shortcuts the scale takes, which the tables print in their
header.

Usage::

    from tools import reproduce_experiments as rx
    spec = rx.build("table1", "smoke")
    [c.run_id for c in spec.cells]   # ['resnet..._snip.../90/seed0', ...]

Experiments (``--experiment`` accepts the number or the name):
  1 table1    ResNet32/50/104 on CIFAR-10: SNIP (standard ResNet) vs SBP-SR
              (Stable ResNet), sparsity 90/95/98/99.5/99.9%.
  2 table2    the paper's nine rows (no pruning, OBD, random, MBP, SNIP,
              GraSP, GraSP-SR, SynFlow, SBP-SR) on ResNet32/50 at 90/95/98%.
  3 table4    V-CNN (tanh) on MNIST at 50%, depth 10/50/100: ordered-phase
              init vs EOC init vs EOC + rescaling.
  4 table5    VGG16 and 3xVGG16 on CIFAR-10 at 85/90/95%: SNIP, SynFlow,
              EOC + rescaling.
  5 table9    ReLU vs tanh ResNet32: SNIP (standard) vs SBP-SR (stable).
  6 collapse  critical sparsity, fully pruned layers and connectivity at
              init, per method and architecture (no training).
  7 extreme   the paper's headline at 99.5/99.9%: SNIP (standard ResNet32)
              vs SBP-SR (Stable ResNet32) at full width, batch norm on and
              off; final and best-epoch accuracy and at-init diagnostics.
"""

import dataclasses
import re
from typing import Any, Callable, Dict, List, Optional, Sequence

SCALES = ("smoke", "cpu", "cpu_full", "gpu", "paper")
# Scales that only some experiments define (the rest reject them).
ONLY_FOR = {"gpu": ("extreme",), "cpu_full": ("table1", "table2", "table9")}
# The CPU scales: real offline data, shortened schedules, narrower models.
CPU_SCALES = ("cpu", "cpu_full")
ORDER = ("table1", "table2", "table4", "table5", "table9", "collapse",
         "extreme")
ALIASES = {str(i + 1): name for i, name in enumerate(ORDER)}
TITLES = {
    "table1": "Table 1: SNIP on standard ResNets vs SBP-SR on Stable ResNets, "
              "CIFAR-10",
    "table2": "Table 2: pruning methods side by side on ResNets, CIFAR-10",
    "table4": "Table 4: V-CNN (tanh) at 50% sparsity: ordered init vs EOC "
              "init vs EOC + rescaling",
    "table5": "Table 5: VGG16 and 3xVGG16 on CIFAR-10: SNIP, SynFlow, EOC + "
              "rescaling",
    "table9": "Table 9: ReLU vs tanh ResNet32: SNIP (standard) vs SBP-SR "
              "(stable)",
    "collapse": "Critical sparsity, layer collapse and connectivity at "
                "initialization (no training)",
    "extreme": "Extreme sparsity: SNIP on the standard ResNet32 vs SBP-SR on "
               "the Stable ResNet32 at full width, with and without batch "
               "norm, CIFAR-10",
}
# SynFlow's iterative schedule per scale (the paper's baseline: 100 rounds).
SYNFLOW_ROUNDS = {"smoke": 2, "cpu": 20, "cpu_full": 100, "paper": 100}
# Seeds per scale when --seeds is not given.
DEFAULT_SEEDS = {"smoke": 1, "cpu": 2, "cpu_full": 3, "gpu": 1, "paper": 3}


def resolve_name(name: str) -> str:
  """'1'..'7' or a name -> the canonical experiment name ('table1', ...)."""
  key = str(name).strip().lower()
  key = ALIASES.get(key, key)
  if key not in ORDER:
    raise ValueError(
        f"unknown experiment {name!r}. Fix: pass a number 1-{len(ORDER)} or one of "
        f"{', '.join(ORDER)} (see --help).")
  return key


def slug(text: str) -> str:
  """Folder-safe lower-case name: 'ResNet32 / SNIP' -> 'resnet32_snip'."""
  s = re.sub(r"[^a-z0-9.]+", "_", text.lower()).strip("_")
  return s.replace(".", "p") or "x"


@dataclasses.dataclass(frozen=True)
class Cell:
  """One (row, column, seed) of a table and how to compute it.

  ``config`` is the full experiment config as a plain nested dict (training
  cells) or the collapse-study settings (collapse cells).
  """
  experiment: str
  row: str
  col: str
  seed: int
  kind: str                  # 'train' or 'collapse'
  config: Dict[str, Any] = dataclasses.field(compare=False, hash=False)
  # Extra environment variables for the cell's own process.
  env: Dict[str, str] = dataclasses.field(default_factory=dict,
                                          compare=False, hash=False)

  @property
  def run_id(self) -> str:
    return f"{slug(self.row)}/{slug(self.col)}/seed{self.seed}"


@dataclasses.dataclass
class Spec:
  """An experiment at one scale: its cells, layout and shortcuts."""
  name: str
  scale: str
  title: str
  rows: List[str]
  cols: List[str]
  seeds: List[int]
  shortcuts: List[str]
  cells: List[Cell]
  metric: str = "test_accuracy"
  col_axis: str = "sparsity"   # x axis label of the plot


def parse_seeds(seeds, scale: str) -> List[int]:
  """None -> the scale's default count; 3 -> [0, 1, 2]; '0,4' -> [0, 4]."""
  if seeds is None or seeds == "":
    return list(range(DEFAULT_SEEDS[scale]))
  if isinstance(seeds, int) and not isinstance(seeds, bool):
    if seeds < 1:
      raise ValueError(f"--seeds={seeds} must be >= 1. Fix: e.g. --seeds=2 "
                       "(seeds 0 and 1) or --seeds=0,3.")
    return list(range(seeds))
  text = str(seeds).strip()
  try:
    if "," in text:
      out = [int(s) for s in text.split(",") if s.strip()]
    else:
      out = list(range(int(text)))
  except ValueError:
    raise ValueError(f"--seeds={seeds!r} is neither a count nor a comma list. "
                     "Fix: e.g. --seeds=2 or --seeds=0,3.") from None
  if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
    raise ValueError(f"--seeds={seeds!r} must be a positive count or distinct "
                     "non-negative seeds. Fix: e.g. --seeds=2 or --seeds=0,3.")
  return out


# --- training settings per scale --------------------------------------------
# Each dict holds the fields a scale changes relative to the paper's setting;
# `shortcuts` turns them into the sentences printed in the table header.

_CIFAR = dict(
    smoke=dict(limit_train=96, limit_test=64, epochs=1, batch_size=32,
               lr=0.05, width_multiplier=0.125, resnet_depth=8,
               vgg_width=0.0625),
    cpu=dict(limit_train=8000, limit_test=2000, epochs=3, batch_size=128,
             lr=0.1, width_multiplier=0.25, resnet_depth=None,
             vgg_width=0.25),
    # Chosen by measurement (docs/results/cpu_scale_probe.md): the dense
    # ResNet32 at width x0.25 reaches 72.8% test accuracy after 8 epochs of
    # all 50,000 images (6 epochs: 68.7%); the whole test set is evaluated
    # once, at the end.
    cpu_full=dict(limit_train=None, limit_test=None, epochs=8,
                  batch_size=128, lr=0.1, width_multiplier=0.25,
                  resnet_depth=None, vgg_width=0.25),
    paper=dict(limit_train=None, limit_test=None, epochs=160, batch_size=128,
               lr=0.1, width_multiplier=None, resnet_depth=None,
               vgg_width=None),
)
_MNIST = dict(
    smoke=dict(limit_train=96, limit_test=64, epochs=1, batch_size=32,
               lr=0.01, width=4, depths=(4,)),
    cpu=dict(limit_train=4000, limit_test=2000, epochs=2, batch_size=64,
             lr=0.001, optimizer="adam", lr_decay_factor=1.0, width=16,
             depths=(10, 50, 100)),
    paper=dict(limit_train=None, limit_test=None, epochs=20, batch_size=128,
               lr=0.01, width=128, depths=(10, 50, 100)),
)


def _shortcuts_cifar(scale, s, resnet=True, vgg=False, extra=()):
  if scale == "paper":
    return ["none: the paper's setting (full CIFAR-10, 160 epochs, batch "
            "128, SGD momentum 0.9, lr 0.1 decayed x0.1 at 50%/75%, weight "
            "decay 1e-4)"] + list(extra)
  out = []
  if scale in CPU_SCALES:
    out.append("data: the offline CIFAR-10 JPEG copy (quality 75, lossy: "
               "absolute accuracies sit below lossless CIFAR-10)")
  else:
    out.append("data: CIFAR-10 (offline JPEG copy), a handful of images")
  out.append("examples in one fixed random order (tools/reproduce_data.py) "
             "so that first-N subsets hold all 10 classes")
  out.append(f"training set: first {s['limit_train']} of 50,000 images; "
             f"test set: first {s['limit_test']} of 10,000"
             if s["limit_train"] else
             "training set: all 50,000 images; test set: all 10,000")
  out.append(f"schedule: {s['epochs']} epoch(s) instead of 160 (lr "
             f"{s['lr']} decayed x0.1 at 50%/75% of the shortened run), "
             f"batch {s['batch_size']}, no per-epoch validation")
  if resnet:
    if s["resnet_depth"]:
      out.append(f"ResNets: depth {s['resnet_depth']} instead of the named "
                 "depth")
    if s["width_multiplier"]:
      out.append(f"ResNets: width x{s['width_multiplier']} (stage widths "
                 f"{', '.join(str(max(1, round(w * s['width_multiplier']))) for w in (32, 64, 128))}"
                 " instead of 32, 64, 128)")
  if vgg and s["vgg_width"]:
    out.append(f"VGG: width x{s['vgg_width']}")
  out.append("TFLite export skipped")
  return out + list(extra)


def _base_config(dataset, model, scale, s, seed, *, method, sparsity,
                 rescale=False, **options):
  """Full experiment config (plain dict) from sbp_tf.config.experiment."""
  from sbp_tf import config as sbp_config  # pylint: disable=g-import-not-at-top
  c = sbp_config.experiment(dataset, model, method=method, sparsity=sparsity,
                            rescale=rescale, **options)
  c.seed = seed
  if method == "synflow":
    # The config default (1 round) would make SynFlow one-shot.
    c.prune.rounds = SYNFLOW_ROUNDS[scale]
  if dataset == "cifar10" and scale != "paper":
    # First-N subsets of the class-sorted offline copy would hold 2 classes.
    from tools import reproduce_data  # pylint: disable=g-import-not-at-top
    c.dataset.data_dir = reproduce_data.mixed_cifar10(create=False)
  c.dataset.limit_train = s["limit_train"]
  c.dataset.limit_test = s["limit_test"]
  c.train.epochs = s["epochs"]
  c.train.batch_size = s["batch_size"]
  c.train.lr = s["lr"]
  if s.get("optimizer"):
    c.train.optimizer = s["optimizer"]
  if s.get("lr_decay_factor"):
    c.train.lr_decay_factor = s["lr_decay_factor"]
  if scale != "paper":
    c.export_tflite = False
    c.train.validate_each_epoch = False
    c.train.verbose = 2 if scale in CPU_SCALES else 0
  return sbp_config.to_dict(c)


def _resnet(name, scale, s):
  """(model name, options) for a named CIFAR ResNet at this scale."""
  opts = {}
  if s["width_multiplier"]:
    opts["width_multiplier"] = s["width_multiplier"]
  if s["resnet_depth"]:
    return "resnet_cifar", dict(opts, depth=s["resnet_depth"])
  return name, opts


# Row label -> (method, stable, rescale) of the ResNet studies. SBP-SR is
# the paper's: SBP on the Stable ResNet, no rescaling (the rescaling trick is
# its FFNN/CNN remedy); baselines use the standard ResNet. "+ rescaling" is
# only ever its own labelled ablation row.
_RESNET_ALGOS = {
    "SNIP (standard)": ("sbp", False, False),
    "SBP-SR (stable)": ("sbp", True, False),
}
ABLATION_RESCALE = "SBP-SR + rescaling (stable, ablation)"
_TABLE1_ALGOS = dict(_RESNET_ALGOS, **{ABLATION_RESCALE: ("sbp", True, True)})
# Table 2's rows under the paper's names (its nine, then our ablation).
# "-SR" = on the Stable ResNet, no rescaling: SBP-SR and GraSP-SR alike.
DENSE_ROW = "no pruning"
_TABLE2_ALGOS = {
    DENSE_ROW: ("magnitude", False, False),  # at sparsity 0: dense
    "OBD": ("obd", False, False),
    "Random": ("random", False, False),
    "MBP": ("magnitude", False, False),
    "SNIP": ("sbp", False, False),
    "GraSP": ("grasp", False, False),
    "GraSP-SR": ("grasp", True, False),
    "SynFlow": ("synflow", False, False),
    "SBP-SR": ("sbp", True, False),
    ABLATION_RESCALE: ("sbp", True, True),
}
_RESNET32_ONLY = ("OBD", "GraSP-SR")


def _ablation_note(scale, extra):
  """At cpu_full the ablation rows are left out: say so instead."""
  if scale != "cpu_full":
    return extra
  return [re.sub(r"; the ablation rows? adds? the rescaling trick", "", e)
          for e in extra] + [
              "rows: the paper's only; the rescaling ablation row is left out "
              "at this scale to save compute (--scale=cpu has it)"]
_NAMES = {"resnet32": "ResNet32", "resnet50": "ResNet50",
          "resnet104": "ResNet104", "vgg16": "VGG16", "vgg16x3": "3xVGG16"}


def _pct(s: float) -> str:
  return f"{100 * s:g}%"


def _grid(name, scale, seeds, rows, cols, make, kind="train"):
  cells = []
  for seed in seeds:
    for r in rows:
      for c in cols:
        cells.append(Cell(name, r, c, seed, kind, make(r, c, seed)))
  return cells


def _table1(scale, seeds):
  s = _CIFAR[scale]
  models = {"smoke": ("resnet32",), "cpu": ("resnet32",),
            "cpu_full": ("resnet32",),
            "paper": ("resnet32", "resnet50", "resnet104")}[scale]
  sparsities = {"smoke": (0.999,),
                "cpu": (0.9, 0.95, 0.98, 0.995, 0.999),
                "cpu_full": (0.9, 0.95, 0.98, 0.995, 0.999),
                "paper": (0.9, 0.95, 0.98, 0.995, 0.999)}[scale]
  algos = (tuple(_RESNET_ALGOS) if scale in ("smoke", "cpu_full")
           else tuple(_TABLE1_ALGOS))
  rows = [f"{_NAMES[m]} / {a}" for m in models for a in algos]
  cols = [_pct(x) for x in sparsities]
  lookup = {f"{_NAMES[m]} / {a}": (m, a) for m in models for a in algos}
  spars = dict(zip(cols, sparsities))

  def make(row, col, seed):
    m, a = lookup[row]
    method, stable, rescale = _TABLE1_ALGOS[a]
    model, opts = _resnet(m, scale, s)
    return _base_config("cifar10", model, scale, s, seed, method=method,
                        sparsity=spars[col], rescale=rescale, stable=stable,
                        **opts)

  extra = ["SBP-SR = SBP on the Stable ResNet without rescaling (the "
           "paper's); the ablation row adds the rescaling trick"]
  if scale in CPU_SCALES:
    extra.append("architectures: ResNet32 only (ResNet50/104 rows of the "
                 "paper need --scale=paper)")
  extra = _ablation_note(scale, extra)
  return Spec("table1", scale, TITLES["table1"], rows, cols, seeds,
              _shortcuts_cifar(scale, s, extra=extra),
              _grid("table1", scale, seeds, rows, cols, make))


def _table2(scale, seeds):
  s = _CIFAR[scale]
  models = {"smoke": ("resnet32",), "cpu": ("resnet32",),
            "cpu_full": ("resnet32",),
            "paper": ("resnet32", "resnet50")}[scale]
  sparsities = {"smoke": (0.9,), "cpu": (0.9, 0.95, 0.98),
                "cpu_full": (0.9, 0.95, 0.98),
                "paper": (0.9, 0.95, 0.98)}[scale]
  algos = (("GraSP", "SBP-SR") if scale == "smoke"
           else tuple(a for a in _TABLE2_ALGOS if a != ABLATION_RESCALE)
           if scale == "cpu_full" else tuple(_TABLE2_ALGOS))
  # The paper has OBD and GraSP-SR rows for ResNet32 only.
  pairs = [(m, a) for m in models for a in algos
           if m == "resnet32" or a not in _RESNET32_ONLY]
  rows = [f"{_NAMES[m]} / {a}" for m, a in pairs]
  lookup = {f"{_NAMES[m]} / {a}": (m, a) for m, a in pairs}
  cols = [_pct(x) for x in sparsities]
  spars = dict(zip(cols, sparsities))

  def make(row, col, seed):
    m, a = lookup[row]
    method, stable, rescale = _TABLE2_ALGOS[a]
    model, opts = _resnet(m, scale, s)
    return _base_config("cifar10", model, scale, s, seed, method=method,
                        sparsity=0.0 if a == DENSE_ROW else spars[col],
                        rescale=rescale, stable=stable, **opts)

  cells = []
  for seed in seeds:  # the dense row: one run per seed fills its columns
    for r in rows:
      if lookup[r][1] == DENSE_ROW:
        cells.append(Cell("table2", r, "all", seed, "train",
                          make(r, cols[0], seed)))
      else:
        cells += [Cell("table2", r, c, seed, "train", make(r, c, seed))
                  for c in cols]
  extra = ["baselines (OBD, random, MBP = magnitude, SNIP, GraSP, SynFlow) "
           "prune the standard ResNet; SBP-SR and GraSP-SR the Stable "
           "ResNet (no rescaling, the paper's); the ablation row adds the "
           "rescaling trick; 'no pruning' is the dense standard ResNet (one "
           "run per seed, shown in every column)",
           "OBD: 0.5 H_ii W_i^2 at init, diag(H) by Hutchinson with 32 "
           "Rademacher probes (sbp_tf.pruning.obd); the paper does not say "
           "which OBD variant its row is (its numbers have no std)"]
  if SYNFLOW_ROUNDS[scale] != 100:
    extra.append(f"SynFlow: {SYNFLOW_ROUNDS[scale]} rounds instead of 100")
  if scale in CPU_SCALES:
    extra.append("architectures: ResNet32 only (ResNet50 needs "
                 "--scale=paper); CIFAR-10 only (no offline CIFAR-100)")
  extra = _ablation_note(scale, extra)
  if scale == "smoke":
    extra.append("methods: GraSP and SBP-SR only")
  return Spec("table2", scale, TITLES["table2"], rows, cols, seeds,
              _shortcuts_cifar(scale, s, extra=extra), cells)


# Row label -> (init, rescale) of Table 4.
_TABLE4_ROWS = {
    "Ordered phase": ("ordered", False),
    "EOC": ("eoc", False),
    "EOC + rescaling": ("eoc", True),
}


def _table4(scale, seeds):
  s = _MNIST[scale]
  dataset = "mnist" if scale == "paper" else "fashion_mnist"
  rows = list(_TABLE4_ROWS)
  cols = [f"L={d}" for d in s["depths"]]
  depth = dict(zip(cols, s["depths"]))

  def make(row, col, seed):
    init, rescale = _TABLE4_ROWS[row]
    return _base_config(dataset, "vcnn", scale, s, seed, method="sbp",
                        sparsity=0.5, rescale=rescale, init=init,
                        activation="tanh", depth=depth[col], width=s["width"])

  if scale == "paper":
    shortcuts = ["none: MNIST, V-CNN width 128, tanh, SBP at 50% sparsity, "
                 f"{s['epochs']} epochs, SGD lr {s['lr']} (the optimizer "
                 "settings are this project's choice, not checked against "
                 "the paper's appendix)"]
  else:
    shortcuts = [
        "data: Fashion-MNIST in place of MNIST (no offline MNIST training "
        "set); Fashion-MNIST is harder, so trained accuracies are lower",
        f"training set: first {s['limit_train']} of 60,000 images; test set:"
        f" first {s['limit_test']} of 10,000",
        f"V-CNN width {s['width']} channels instead of 128",
        f"schedule: {s['epochs']} epoch(s), batch {s['batch_size']}, "
        + (f"Adam lr {s['lr']}" if s.get("optimizer") == "adam" else
           f"SGD momentum 0.9, lr {s['lr']}")
        + (" constant" if s.get("lr_decay_factor") == 1.0 else
           " decayed x0.1 at 50%/75%")
        + (" (in a probe SGD lr 0.01 momentum 0.9 did not train even the "
           "dense depth-100 EOC V-CNN in this budget: 9.9% test accuracy; "
           "Adam reached 37%)" if s.get("optimizer") == "adam" else ""),
        "TFLite export skipped"]
    if scale == "smoke":
      shortcuts.insert(3, f"depth {', '.join(map(str, s['depths']))} "
                       "instead of 10, 50, 100")
  spec = Spec("table4", scale, TITLES["table4"], rows, cols, seeds, shortcuts,
              _grid("table4", scale, seeds, rows, cols, make))
  spec.col_axis = "depth"
  return spec


_TABLE5_ROWS = {
    "SNIP": ("sbp", False),
    "SynFlow": ("synflow", False),
    "EOC + rescaling": ("sbp", True),
}


def _table5(scale, seeds):
  s = _CIFAR[scale]
  models = {"smoke": ("vgg16",), "cpu": ("vgg16", "vgg16x3"),
            "paper": ("vgg16", "vgg16x3")}[scale]
  sparsities = {"smoke": (0.9,), "cpu": (0.85, 0.9, 0.95),
                "paper": (0.85, 0.9, 0.95)}[scale]
  algos = (("SynFlow", "EOC + rescaling") if scale == "smoke"
           else tuple(_TABLE5_ROWS))
  rows = [f"{_NAMES[m]} / {a}" for m in models for a in algos]
  lookup = {f"{_NAMES[m]} / {a}": (m, a) for m in models for a in algos}
  cols = [_pct(x) for x in sparsities]
  spars = dict(zip(cols, sparsities))

  def make(row, col, seed):
    m, a = lookup[row]
    method, rescale = _TABLE5_ROWS[a]
    opts = dict(init="eoc")
    if s["vgg_width"]:
      opts["width_multiplier"] = s["vgg_width"]
    return _base_config("cifar10", m, scale, s, seed, method=method,
                        sparsity=spars[col], rescale=rescale, **opts)

  extra = ["all rows use the EOC init (for ReLU the same as He init); the "
           "rows differ by method and by the rescaling trick"]
  if scale == "smoke":
    extra.append("rows: SynFlow and EOC + rescaling only")
  if scale != "paper":
    extra.append(f"SynFlow: {SYNFLOW_ROUNDS[scale]} rounds instead of 100")
  return Spec("table5", scale, TITLES["table5"], rows, cols, seeds,
              _shortcuts_cifar(scale, s, resnet=False, vgg=True, extra=extra),
              _grid("table5", scale, seeds, rows, cols, make))


def _table9(scale, seeds):
  s = _CIFAR[scale]
  sparsities = {"smoke": (0.9,), "cpu": (0.9, 0.98),
                "cpu_full": (0.9, 0.95, 0.98),
                "paper": (0.9, 0.95, 0.98)}[scale]
  algos = _RESNET_ALGOS if scale == "cpu_full" else _TABLE1_ALGOS
  rows = [f"{act} / {a}" for act in ("ReLU", "tanh") for a in algos]
  if scale == "smoke":
    rows = ["ReLU / SNIP (standard)", "tanh / SBP-SR (stable)"]
  cols = [_pct(x) for x in sparsities]
  spars = dict(zip(cols, sparsities))

  def make(row, col, seed):
    act, a = row.split(" / ", 1)
    method, stable, rescale = _TABLE1_ALGOS[a]
    model, opts = _resnet("resnet32", scale, s)
    return _base_config("cifar10", model, scale, s, seed, method=method,
                        sparsity=spars[col], rescale=rescale, stable=stable,
                        activation=act.lower(), **opts)

  extra = ["ResNet32 only; EOC init for each activation (tanh: "
           "sigma_b = model default)",
           "SBP-SR = SBP on the Stable ResNet without rescaling (the "
           "paper's); the ablation rows add the rescaling trick"]
  extra = _ablation_note(scale, extra)
  return Spec("table9", scale, TITLES["table9"], rows, cols, seeds,
              _shortcuts_cifar(scale, s, extra=extra),
              _grid("table9", scale, seeds, rows, cols, make))


# --- collapse study ---------------------------------------------------------

COLLAPSE_METHODS = {
    "SNIP/SBP": "sbp", "Magnitude": "magnitude", "Random": "random",
    "GraSP": "grasp", "SynFlow": "synflow"}
_COLLAPSE = dict(
    smoke=dict(archs=(("ResNet8 (standard)", "resnet_cifar",
                       dict(depth=8, stable=False, width_multiplier=0.125),
                       "cifar10", ("SNIP/SBP", "Magnitude")),
                      ("V-CNN L=4 (EOC)", "vcnn",
                       dict(depth=4, width=4, activation="relu", init="eoc"),
                       "fashion_mnist", ("SynFlow",))),
               methods=("SNIP/SBP", "Magnitude", "SynFlow"),
               targets=(0.9, 0.99, 0.999), batch_size=16, num_batches=1,
               synflow_rounds=5),
    cpu=dict(archs=(
        ("ResNet32 (standard)", "resnet32", dict(stable=False), "cifar10"),
        ("ResNet32 (stable)", "resnet32", dict(stable=True), "cifar10"),
        ("VGG16", "vgg16", dict(init="eoc"), "cifar10"),
        ("V-CNN L=100 (EOC, tanh)", "vcnn",
         dict(depth=100, width=32, activation="tanh", init="eoc"),
         "fashion_mnist"),
        ("ResNet104 (standard)", "resnet104", dict(stable=False), "cifar10"),
        ("ResNet104 (stable)", "resnet104", dict(stable=True), "cifar10")),
             methods=tuple(COLLAPSE_METHODS),
             targets=(0.9, 0.95, 0.98, 0.99, 0.995, 0.999), batch_size=128,
             num_batches=1, synflow_rounds=20),
    paper=dict(archs=(
        ("ResNet32 (standard)", "resnet32", dict(stable=False), "cifar10"),
        ("ResNet32 (stable)", "resnet32", dict(stable=True), "cifar10"),
        ("ResNet50 (standard)", "resnet50", dict(stable=False), "cifar10"),
        ("ResNet50 (stable)", "resnet50", dict(stable=True), "cifar10"),
        ("ResNet104 (standard)", "resnet104", dict(stable=False), "cifar10"),
        ("ResNet104 (stable)", "resnet104", dict(stable=True), "cifar10"),
        ("VGG16", "vgg16", dict(init="eoc"), "cifar10"),
        ("V-CNN L=100 (EOC, tanh)", "vcnn",
         dict(depth=100, width=128, activation="tanh", init="eoc"),
         "mnist")),
               methods=tuple(COLLAPSE_METHODS),
               targets=(0.9, 0.95, 0.98, 0.99, 0.995, 0.999), batch_size=128,
               num_batches=10, synflow_rounds=100),
)


def _collapse(scale, seeds):
  s = _COLLAPSE[scale]
  # An arch entry may name its own methods (5th element; smoke scale).
  rows = [f"{a[0]} / {m}" for a in s["archs"]
          for m in (a[4] if len(a) > 4 else s["methods"])]
  cols = ["critical sparsity"] + [_pct(t) for t in s["targets"]]
  archs = {a[0]: a for a in s["archs"]}

  def make(row, col, seed):
    arch, method = row.rsplit(" / ", 1)
    label, model, opts, dataset = archs[arch][:4]
    cfg = dict(arch=label, model=model, options=dict(opts), dataset=dataset,
               method=COLLAPSE_METHODS[method], targets=list(s["targets"]),
               batch_size=s["batch_size"], num_batches=s["num_batches"],
               synflow_rounds=s["synflow_rounds"], seed=seed)
    if cfg["method"] == "synflow":
      # Exact float64 SynFlow (its scores on residual nets differ from the
      # earlier float32 fallback's), so earlier SynFlow cells are not reused.
      cfg["synflow_scores"] = "float64"
    return cfg

  cells = []
  for seed in seeds:
    for r in rows:
      # One cell per (architecture, method, seed) fills the whole row.
      cells.append(Cell("collapse", r, "all", seed, "collapse",
                        make(r, None, seed)))
  if scale == "paper":
    shortcuts = [f"saliency on {s['num_batches']} batches of "
                 f"{s['batch_size']}; SynFlow {s['synflow_rounds']} rounds"]
  else:
    shortcuts = [
        f"saliency on {s['num_batches']} batch of {s['batch_size']} real "
        "training images (CIFAR-10 JPEG copy; Fashion-MNIST for the V-CNN)",
        f"SynFlow with {s['synflow_rounds']} rounds (paper: 100)"]
    if scale == "smoke":
      shortcuts.append("tiny models (ResNet8 width x0.125, ReLU V-CNN depth "
                       "4 width 4); 3 architecture/method pairs")
    else:
      shortcuts.append("models at full size (V-CNN width 32 instead of 128)")
  spec = Spec("collapse", scale, TITLES["collapse"], rows, cols, seeds,
              shortcuts, cells, metric="critical_sparsity")
  return spec


# --- extreme-sparsity study -------------------------------------------------

# Batch norm x (method, stable); SBP-SR never rescales here.
_EXTREME_ROWS = {
    f"{bn_label} / {algo}": (bn, algo)
    for bn_label, bn in (("BN", True), ("no BN", False))
    for algo in _RESNET_ALGOS}
# The batch-norm setting of the decisive GPU cells: the one under which the
# cpu-scale study (docs/results/extreme_cpu.md) separates SBP-SR from SNIP.
GPU_BATCH_NORM = True
# limit_train x epochs of the cpu scale are sized from measured epoch times
# so that 3 seeds x 8 cells fit about 80 minutes on a small shared CPU
# machine; the gpu scale so that its 8 cells fit about 10 minutes on one
# data-centre GPU (an estimate). Every epoch is validated on the test split
# for the best-epoch column.
_EXTREME = dict(
    smoke=dict(limit_train=64, limit_test=32, epochs=2, batch_size=32,
               lr=0.1, width_multiplier=0.125, resnet_depth=8,
               sparsities=(0.995, 0.999), models=("resnet32",)),
    cpu=dict(limit_train=4000, limit_test=2000, epochs=2, batch_size=128,
             lr=0.1, width_multiplier=None, resnet_depth=None,
             sparsities=(0.995, 0.999), models=("resnet32",)),
    gpu=dict(limit_train=None, limit_test=None, epochs=3, batch_size=128,
             lr=0.1, width_multiplier=None, resnet_depth=None,
             sparsities=(0.995, 0.999), models=("resnet32", "resnet104")),
    paper=dict(limit_train=None, limit_test=None, epochs=160, batch_size=128,
               lr=0.1, width_multiplier=None, resnet_depth=None,
               sparsities=(0.995, 0.999),
               models=("resnet32", "resnet50", "resnet104")),
)


def _extreme_rows(scale):
  """Row label -> (model, batch_norm, algo label)."""
  s = _EXTREME[scale]
  rows = {}
  for m in s["models"]:
    for label, (bn, algo) in _EXTREME_ROWS.items():
      if scale == "gpu" and bn != GPU_BATCH_NORM:
        continue
      key = label if len(s["models"]) == 1 else f"{_NAMES[m]} / {label}"
      rows[key] = (m, bn, algo)
  return rows


def _extreme(scale, seeds):
  s = _EXTREME[scale]
  table = _extreme_rows(scale)
  rows = list(table)
  cols = [_pct(x) for x in s["sparsities"]]
  spars = dict(zip(cols, s["sparsities"]))

  def make(row, col, seed):
    m, bn, algo = table[row]
    method, stable, rescale = _RESNET_ALGOS[algo]
    model, opts = _resnet(m, scale, s)
    cfg = _base_config("cifar10", model, scale, s, seed, method=method,
                       sparsity=spars[col], rescale=rescale, stable=stable,
                       batch_norm=bn, **opts)
    # Best-epoch accuracy needs a test evaluation after every epoch.
    cfg["train"]["validate_each_epoch"] = True
    return cfg

  if scale == "paper":
    shortcuts = _shortcuts_cifar("paper", s)
  else:
    shortcuts = [x for x in _shortcuts_cifar(
        "cpu" if scale == "gpu" else scale, s)
                 if not x.startswith(("schedule", "training set"))]
    data = (f"training set: first {s['limit_train']} of 50,000 images; test "
            f"set: first {s['limit_test']} of 10,000" if s["limit_train"]
            else "training set: all 50,000 images; test set: all 10,000")
    shortcuts.insert(len(shortcuts) - 1, data)
    shortcuts.insert(len(shortcuts) - 1,
                     f"schedule: {s['epochs']} epoch(s) instead of 160 (lr "
                     f"{s['lr']} decayed x0.1 at 50%/75% of the shortened "
                     f"run), batch {s['batch_size']}, test accuracy after "
                     "every epoch")
  if scale == "gpu":
    shortcuts.append(f"batch norm {'on' if GPU_BATCH_NORM else 'off'} only "
                     "(the setting the cpu-scale study found decisive); "
                     "ResNet32 and ResNet104")
  shortcuts.append("SBP-SR = SBP on the Stable ResNet without rescaling; "
                   "SNIP = SBP on the standard ResNet; batch norm per row")
  shortcuts.append("'best' = the best test accuracy over epochs (what the "
                   "authors' code reports); 'final' = after the last epoch")
  return Spec("extreme", scale, TITLES["extreme"], rows, cols, seeds,
              shortcuts, _grid("extreme", scale, seeds, rows, cols, make))


_BUILDERS: Dict[str, Callable] = {
    "table1": _table1, "table2": _table2, "table4": _table4,
    "table5": _table5, "table9": _table9, "collapse": _collapse,
    "extreme": _extreme}


def build(name: str, scale: str, seeds=None) -> Spec:
  """The cells of experiment ``name`` at ``scale`` for the given seeds.

  Args:
    name: '1'..'7' or table1, table2, table4, table5, table9, collapse, extreme.
    scale: smoke (seconds, for tests), cpu (real data, shortened, within
      about an hour on 2 cores), paper (the published setting).
    seeds: None (scale default), a count, or a comma list '0,3'.

  Returns:
    A :class:`Spec`; cells are ordered seed-major so that a partial run
    has every cell of seed 0 first.
  """
  key = resolve_name(name)
  if scale not in SCALES:
    raise ValueError(f"unknown scale {scale!r}. Fix: use one of "
                     f"{', '.join(SCALES)}.")
  if scale in ONLY_FOR and key not in ONLY_FOR[scale]:
    raise ValueError(
        f"--scale={scale} is defined only for {', '.join(ONLY_FOR[scale])}, "
        f"not {key}. Fix: use --scale=cpu or --scale=paper for {key}.")
  return _BUILDERS[key](scale, parse_seeds(seeds, scale))


def help_text() -> str:
  """One line per experiment, for the --experiment flag's help."""
  return "; ".join(f"{i + 1}={n}: {TITLES[n]}" for i, n in enumerate(ORDER))
