"""The benchmark's sections: a registry that ``tools/benchmark.py`` loops over.

A section is one module of this package that calls :func:`register` at import
with a :class:`Section`: its name, what it measures (``run``), how it renders
(``markdown``), which targets it checks (``targets``, limits as the module's
named constants) and its preset settings (``presets``). ``tools/benchmark.py``
knows no section by name: flags, run order, JSON, markdown and targets all
come from :func:`sections`.

Adding a section touches exactly one new file, ``tools/bench/<name>.py``::

    from tools import bench

    MAX_RATIO = 2.0   # the target's limit, named

    def presets(quick, repeats):
      return {"foo_batch": 8 if quick else 128}   # -> settings.foo_batch

    def run(settings, ctx):
      return {"ratio": ...}                         # the section's JSON figures

    def markdown(sec):
      return [f"ratio {sec['ratio']:.3g}"]           # lines under "## Foo"

    def targets(sec):
      if "ratio" not in sec:
        return []
      return [bench.target("foo cost", "foo s / step s", sec["ratio"], "<=",
                           MAX_RATIO)]

    bench.register(bench.Section("foo", run, markdown, targets=targets,
                                 presets=presets, order=60))

Every public module of this package is imported by :func:`sections` (the
helpers ``common``, ``timing`` and ``report`` register nothing), so the new
section then runs under ``--sections=foo`` and by default.
"""

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

__all__ = ["Context", "Section", "Settings", "SkipSection", "register",
           "sections", "target"]


class SkipSection(Exception):
  """A section cannot run here (data absent, quick mode): ``skipped``."""


@dataclasses.dataclass
class Context:
  """What a running section may read besides its settings.

  Attributes:
    results: JSON of the sections measured earlier in this run (run order),
      by name; e.g. the pipeline section reads the training section's
      ``dense_images_per_s``.
    progress: ``progress(partial_section_json)`` stores partial figures of a
      long section (written to disk at once, so an interrupted run keeps them).
  """
  results: Mapping[str, Dict[str, Any]]
  progress: Callable[[Dict[str, Any]], Any] = lambda partial: None


@dataclasses.dataclass(frozen=True)
class Section:
  """One benchmark section.

  Attributes:
    name: ``--sections`` name and JSON key ``sections.<name>``; the markdown
      heading is ``name.capitalize()``.
    run: ``run(settings, ctx) -> dict`` of the section's JSON figures (and
      optional ``notes``); raise :class:`SkipSection` when it cannot run.
    markdown: ``markdown(sec) -> list of lines`` rendering a section whose
      status is ``ok`` (wall time and notes are appended by the caller).
    targets: ``targets(sec) -> list of target(...) dicts``; ``sec`` is the
      section's JSON, ``{}`` when not measured.
    presets: ``presets(quick, repeats) -> dict`` of the section's settings
      (flat names, shared namespace of :class:`Settings`; unique per section).
    check: ``check(settings)`` raises ValueError for invalid settings; run
      for every registered section before anything is measured.
    order: position in ``--sections``, the JSON and the markdown (ascending).
    run_order: position in the measuring order (ascending; default
      ``order``): long sections go last so the others' figures are saved
      first.
  """
  name: str
  run: Callable[["Settings", Context], Dict[str, Any]]
  markdown: Callable[[Dict[str, Any]], List[str]]
  targets: Callable[[Dict[str, Any]], List[Dict[str, Any]]] = (
      lambda sec: [])
  presets: Callable[[bool, int], Dict[str, Any]] = lambda quick, repeats: {}
  check: Callable[["Settings"], None] = lambda settings: None
  order: int = 100
  run_order: Optional[int] = None


_REGISTRY: Dict[str, Section] = {}
_LOADED = False


def register(section: Section) -> Section:
  """Adds ``section`` to the registry; returns it.

  Raises:
    ValueError: another section already has this name.
  """
  old = _REGISTRY.get(section.name)
  # A module run as __main__ (python -m tools.bench.memory) registers again.
  if old is not None and old.run.__module__ != section.run.__module__ and (
      "__main__" not in (old.run.__module__, section.run.__module__)):
    raise ValueError(
        f"Section {section.name!r} is registered by both {old.run.__module__} "
        f"and {section.run.__module__}. Fix: rename one of them.")
  _REGISTRY.setdefault(section.name, section)
  return section


def sections() -> Dict[str, Section]:
  """Every section of this package, by name, in ``order``.

  Imports each public module of ``tools/bench`` once (a module registers
  itself at import); helpers register nothing.
  """
  global _LOADED
  if not _LOADED:
    for info in pkgutil.iter_modules(__path__):
      if not info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{info.name}")
    _LOADED = True
  return dict(sorted(_REGISTRY.items(), key=lambda kv: kv[1].order))


def run_order(names: Sequence[str]) -> List[Section]:
  """The sections ``names`` in measuring order (``run_order``, ``order``)."""
  secs = sections()
  chosen = [secs[n] for n in secs if n in names]
  return sorted(chosen, key=lambda s: (
      s.order if s.run_order is None else s.run_order, s.order))


def target(name: str, figure: str, value: Optional[float], op: str,
           limit: float, spread: Optional[Sequence[float]] = None
           ) -> Dict[str, Any]:
  """A target's JSON: ``met = value <= limit`` (op ``<=``) or ``>=``.

  ``met`` is None when ``value`` is None (not measured); ``spread`` is
  ``[min, max]`` of the figure's samples, if it has several.
  """
  if op not in ("<=", ">="):
    raise ValueError(f"target {name!r}: op must be '<=' or '>=', got {op!r}.")
  met = None if value is None else (value <= limit if op == "<="
                                    else value >= limit)
  return {"name": name, "figure": figure, "value": value, "op": op,
          "limit": limit, "met": met, "spread": spread}


_COMMON = ("quick", "repeats", "seed", "data_dir")


@dataclasses.dataclass
class Settings:
  """What the sections measure: common fields plus each section's presets.

  ``options`` holds the sections' settings (``Section.presets``); they read
  and write as attributes (``settings.train_batch``, ``settings.methods =
  [...]``). :meth:`as_dict` is the flat JSON ``settings``.
  """
  quick: bool
  repeats: int
  seed: int
  data_dir: Optional[str]
  options: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def __getattr__(self, name):
    # Only called when normal lookup fails: the sections' settings.
    options = self.__dict__.get("options")
    if options is not None and name in options:
      return options[name]
    raise AttributeError(
        f"Settings has no {name!r}. Fix: return it from a section's "
        f"presets(); known: {sorted(_COMMON + tuple(options or ()))}.")

  def __setattr__(self, name, value):
    options = self.__dict__.get("options")
    if options is not None and name in options:
      options[name] = value
    else:
      object.__setattr__(self, name, value)

  def as_dict(self) -> Dict[str, Any]:
    """``{quick, repeats, seed, data_dir, **options}``."""
    return dict({k: getattr(self, k) for k in _COMMON}, **self.options)

  @classmethod
  def preset(cls, quick: bool, repeats: int, seed: int = 0,
             data_dir: Optional[str] = None, **overrides) -> "Settings":
    """Every section's presets for ``quick`` and ``repeats``; ``overrides``
    (None values ignored) replace preset values by name.

    Raises:
      ValueError: an override no section's presets define.
    """
    options = {}
    for section in sections().values():
      options.update(section.presets(quick, repeats))
    unknown = sorted(k for k, v in overrides.items()
                     if v is not None and k not in options)
    if unknown:
      raise ValueError(f"Unknown setting(s) {unknown}. Fix: use one of "
                       f"{sorted(options)}.")
    options.update({k: v for k, v in overrides.items() if v is not None})
    return cls(quick=quick, repeats=repeats, seed=seed, data_dir=data_dir,
               options=options)

  @classmethod
  def full(cls, repeats: int = 5, **kw) -> "Settings":
    """The reported run: full-size models, 5 repeats."""
    return cls.preset(False, repeats, **kw)

  @classmethod
  def quick_preset(cls, repeats: int = 2, **kw) -> "Settings":
    """``--quick``: small models, 2 repeats (checks the harness)."""
    return cls.preset(True, repeats, **kw)
