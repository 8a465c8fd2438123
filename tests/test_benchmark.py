"""Tests of tools/benchmark.py and its sections (tools/bench): statistics
helpers, the section registry and the --quick JSON schema.

Timings are never asserted (the machine is shared); the quick run checks that
every section produces its figures with the documented keys and types, that
ratios are positive and consistent with their parts, and that the target
verdicts follow from value and limit.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tools import bench
from tools import benchmark as bm
from tools.bench import saliency

REPO = pathlib.Path(__file__).resolve().parents[1]
# The registry itself: tests add fake sections with monkeypatch.setitem.
REGISTRY = bench._REGISTRY  # pylint: disable=protected-access


# ---------------------------------------------------------------- helpers


def test_summarize_matches_hand_computed_order_statistics():
  samples = [7.0, 1.0, 3.0, 10.0]
  s = bm.summarize(samples, unit="ms")
  # Sorted 1, 3, 7, 10: median = (3 + 7) / 2; linear-interpolated quartiles
  # at positions 0.75 and 2.25 of the sorted list.
  assert s["median"] == pytest.approx(5.0)
  assert s["q1"] == pytest.approx(1.0 + 0.75 * (3.0 - 1.0))
  assert s["q3"] == pytest.approx(7.0 + 0.25 * (10.0 - 7.0))
  assert (s["min"], s["max"], s["n"], s["unit"]) == (1.0, 10.0, 4, "ms")
  assert s["samples"] == samples


def test_summarize_rejects_empty():
  with pytest.raises(ValueError, match="at least one sample"):
    bm.summarize([])


def test_time_repeats_separates_first_call(monkeypatch):
  # A fake clock: each fn() call advances time by the next planned duration,
  # so the result does not depend on the machine's speed.
  durations = iter([5.0, 1.0, 2.0, 3.0])
  now = [0.0]
  monkeypatch.setattr(bm.time, "perf_counter", lambda: now[0])
  setups = []

  def fn():
    now[0] += next(durations)

  first, steady = bm.time_repeats(fn, repeats=3,
                                  setup=lambda: setups.append(1))
  assert first == 5.0
  assert steady["samples"] == [1.0, 2.0, 3.0]
  assert steady["median"] == 2.0
  assert len(setups) == 4  # setup before every call, untimed
  with pytest.raises(ValueError, match="repeats must be >= 1"):
    bm.time_repeats(fn, repeats=0)


def test_ratio_stats_pairs_rounds():
  r = bm.ratio_stats([2.0, 6.0, 3.0], [1.0, 2.0, 3.0])
  assert r["samples"] == [2.0, 3.0, 1.0]
  assert r["median"] == 2.0 and r["unit"] == "ratio"
  with pytest.raises(ValueError, match="paired samples"):
    bm.ratio_stats([1.0], [1.0, 2.0])


def test_other_cpu_cores_subtracts_own_time():
  start = (100.0, 10.0, 0.0)
  end = (130.0, 20.0, 20.0)  # machine busy 30 s, this process 10 s, 20 s wall
  assert bm.other_cpu_cores(start, end) == pytest.approx(1.0)
  assert bm.other_cpu_cores(start, (float("nan"), 20.0, 20.0)) is None
  assert bm.other_load(1.0, [], 2) and not bm.other_load(0.1, [], 2)
  assert bm.other_load(None, [(3.5, 1, 1)], 2)


def test_targets_verdicts_follow_value_and_limit():
  res = {"sections": {
      "saliency": {"rows": [
          {"method": "sbp", "model": "m", "batch_size": 8,
           "ratio_to_step": bm.summarize([1.0, 1.2])},
          {"method": "grasp", "model": "m", "batch_size": 8,
           "ratio_to_step": bm.summarize([3.5])},
          {"method": "random", "model": "m", "batch_size": 8,
           "ratio_to_step": bm.summarize([0.1])}]},
      "training": {"rows": [
          {"variant": "dense", "ratio_to_dense": bm.summarize([1.0])},
          {"variant": "tfmot", "ratio_to_dense": bm.summarize([0.9])}]},
      "tflite": {"rows": [{"sparsity": 0.95, "quantize": "none",
                           "size_ratio": 0.1}]}}}
  got = bm.targets(res)
  # sbp 1.1 <= 1.15, grasp 3.5 > 3, tfmot 0.9 < 0.95, TFLite 0.1 <= 0.12;
  # random has no target.
  assert [t["met"] for t in got] == [True, False, False, True]
  assert [t["value"] for t in got] == pytest.approx([1.1, 3.5, 0.9, 0.1])


def _result(command, sections, shared=False, mode="full"):
  return {"mode": mode, "command": command, "started_utc": "t-" + command,
          "wall_s": 10.0, "machine": {"shared": shared,
                                      "other_cpu_cores": 0.0},
          "sections": sections}


def test_merge_replaces_only_remeasured_sections_and_redoes_targets():
  slow = {"rows": [{"method": "sbp", "model": "m", "batch_size": 8,
                    "ratio_to_step": bm.summarize([2.0])}]}
  fast = {"rows": [{"method": "sbp", "model": "m", "batch_size": 8,
                    "ratio_to_step": bm.summarize([1.1])}]}
  tfl = {"rows": [{"sparsity": 0.95, "quantize": "none", "size_ratio": 0.1}]}
  old = _result("full", {"saliency": slow, "tflite": tfl}, shared=True)
  old["targets"] = bm.targets(old)
  assert [t["met"] for t in old["targets"]] == [False, True]
  out = bm.merge(old, _result("sal", {"saliency": fast}))
  assert out["sections"]["tflite"] is tfl
  assert out["sections"]["saliency"] is fast
  assert [t["met"] for t in out["targets"]] == [True, True]
  assert [(r["command"], r["sections"]) for r in out["runs"]] == [
      ("full", ["tflite"]), ("sal", ["saliency"])]
  assert out["machine"]["shared"] is True  # the kept run was shared
  assert out["wall_s"] == 20.0
  md = bm.to_markdown(dict(out, machine=dict(
      out["machine"], cpu_model="x", usable_cores=2, logical_cores=2,
      memory_gib=1, gpus=[], versions={}, loadavg_start=[0, 0, 0],
      loadavg_end=[0, 0, 0], loadavg_peak=0.0)))
  assert "- `sal` (t-sal, 10 s): saliency" in md
  assert "- `full` (t-full, 10 s, machine shared): tflite" in md
  # A second merge of the same section drops the earlier run's claim to it.
  again = bm.merge(out, _result("sal2", {"saliency": slow}))
  assert [r["command"] for r in again["runs"]] == ["full", "sal2"]
  with pytest.raises(ValueError, match="Cannot merge a quick run"):
    bm.merge(old, _result("q", {}, mode="quick"))


def test_merge_across_machines_names_each_runs_cpu():
  tfl = {"rows": [{"sparsity": 0.95, "quantize": "none", "size_ratio": 0.1}]}
  old = _result("full", {"tflite": tfl})
  old["machine"]["cpu_model"] = "Intel A"
  new = _result("sal", {"saliency": {"rows": []}})
  new["machine"]["cpu_model"] = "AMD B"
  out = bm.merge(old, new)
  assert [r["cpu_model"] for r in out["runs"]] == ["Intel A", "AMD B"]
  full = dict(cpu_model="AMD B", usable_cores=2, logical_cores=2,
              memory_gib=1, gpus=[], versions={}, loadavg_start=[0, 0, 0],
              loadavg_end=[0, 0, 0], loadavg_peak=0.0)
  md = bm.to_markdown(dict(out, machine=dict(out["machine"], **full)))
  assert "runs of the same tool on different machines" in md
  assert "- `full` (t-full, 10 s, Intel A): tflite" in md
  assert "- `sal` (t-sal, 10 s, AMD B): saliency" in md
  # Re-measuring on the first machine again: one machine, said so.
  back = _result("sal2", {"saliency": {"rows": []}})
  back["machine"]["cpu_model"] = "Intel A"
  md = bm.to_markdown(dict(bm.merge(out, back), machine=dict(
      out["machine"], **dict(full, cpu_model="Intel A"))))
  assert "runs of the same tool on the same machine" in md


def test_run_rejects_unknown_section_and_method():
  s = bm.Settings.quick_preset()
  with pytest.raises(ValueError, match=r"Unknown section\(s\) \['gpu'\]"):
    bm.run(s, ["gpu"])
  s.methods = ["snipp"]
  with pytest.raises(ValueError, match=r"Unknown method\(s\) \['snipp'\]"):
    bm.run(s, ["saliency"])


# ---------------------------------------------------------------- registry


def test_registry_orders_sections_and_measures_saliency_last():
  assert bm.SECTIONS == ("saliency", "training", "pipeline", "tflite",
                         "memory", "fresh", "keras3")
  # Training before pipeline (its reference rate); saliency, the longest,
  # last so the others' figures are written first.
  assert [s.name for s in bench.run_order(bm.SECTIONS)] == [
      "training", "pipeline", "tflite", "memory", "fresh", "keras3",
      "saliency"]
  assert [s.name for s in bench.run_order(["memory", "training"])] == [
      "training", "memory"]


def test_settings_are_the_sections_presets_with_overrides():
  s = bm.Settings.quick_preset(methods=["sbp"], synflow_rounds=None)
  assert s.methods == ["sbp"] and s.synflow_rounds == 3  # None: preset kept
  assert s.train_batch == 32 and s.memory_batch == 8
  flat = s.as_dict()
  assert {"quick", "repeats", "seed", "data_dir", "methods", "saliency_models",
          "train_model", "tflite_model", "memory_model"} <= set(flat)
  assert "options" not in flat
  s.train_batch = 4  # writes the section's setting, not a new attribute
  assert s.as_dict()["train_batch"] == 4
  full = bm.Settings.full(repeats=3)
  assert full.train_rounds == 3 and full.synflow_rounds == 100
  with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['bogus'\]"):
    bm.Settings.full(bogus=1)
  with pytest.raises(AttributeError, match="presets"):
    _ = s.no_such_setting


def test_one_registered_section_runs_renders_and_checks_its_target(
    monkeypatch):
  # What adding tools/bench/<name>.py does: register() at import.
  def run(settings, ctx):
    ctx.progress({"value": 0.5})
    return {"value": 2.0, "seen": sorted(ctx.results), "notes": ["n1"]}

  section = bench.Section(
      "foo", run, lambda sec: [f"value is {sec['value']}"],
      targets=lambda sec: ([bench.target("foo target", "foo / ref",
                                         sec["value"], "<=", 1.0)]
                           if "value" in sec else []),
      order=60)
  monkeypatch.setitem(REGISTRY, "foo", section)
  partials = []  # what on_section saw then (main writes it to disk at once)
  res = bm.run(bm.Settings.quick_preset(), ["foo"], command="c",
               on_section=lambda p: partials.append(
                   (p["partial"], p["sections"]["foo"].get("value"))))
  sec = res["sections"]["foo"]
  assert sec["status"] == "ok" and sec["value"] == 2.0 and sec["seen"] == []
  # The progress call and the section's end each wrote partial results.
  assert partials == [(True, 0.5), (True, 2.0)]
  assert [(t["name"], t["met"]) for t in res["targets"]] == [
      ("foo target", False)]
  md = bm.to_markdown(res)
  assert "## Foo\n\nvalue is 2.0\n" in md and "- n1" in md
  assert "| foo target | foo / ref | 2 | - | <= 1.0 | **missed** |" in md


def test_a_failing_or_skipping_section_does_not_stop_the_others(monkeypatch):
  def broken(settings, ctx):
    raise RuntimeError("boom")

  def skipped(settings, ctx):
    raise bench.SkipSection("no data here")

  monkeypatch.setitem(REGISTRY, "broken", bench.Section(
      "broken", broken, lambda sec: [], order=61))
  monkeypatch.setitem(REGISTRY, "skipped", bench.Section(
      "skipped", skipped, lambda sec: [], order=62))
  res = bm.run(bm.Settings.quick_preset(), ["broken", "skipped"])
  assert res["sections"]["broken"]["status"] == "error"
  assert "RuntimeError: boom" in res["sections"]["broken"]["reason"]
  assert res["sections"]["skipped"] == dict(
      res["sections"]["skipped"], status="skipped", reason="no data here")
  md = bm.to_markdown(res)
  assert "_error: RuntimeError: boom_" in md
  assert "_skipped: no data here_" in md


def test_register_rejects_a_second_module_with_the_same_name(monkeypatch):
  monkeypatch.setattr(bench, "_REGISTRY", dict(REGISTRY))
  other = bench.Section("saliency", lambda s, c: {}, lambda sec: [])
  with pytest.raises(ValueError, match="registered by both"):
    bench.register(other)


def test_target_verdicts():
  assert bench.target("t", "f", 1.0, "<=", 1.0)["met"] is True
  assert bench.target("t", "f", 0.9, ">=", 1.0)["met"] is False
  assert bench.target("t", "f", None, ">=", 1.0)["met"] is None
  with pytest.raises(ValueError, match="op must be"):
    bench.target("t", "f", 1.0, "<", 1.0)


# ---------------------------------------------------------------- --quick


def _is_stat(s, unit=None):
  assert set(s) >= {"median", "q1", "q3", "min", "max", "n", "unit",
                    "samples"}, s
  assert s["n"] == len(s["samples"]) >= 1
  assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
  assert all(math.isfinite(v) and v > 0 for v in s["samples"]), s
  if unit:
    assert s["unit"] == unit
  return True


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, shared_data):
  out = tmp_path_factory.mktemp("bench")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, str(REPO / "tools" / "benchmark.py"), "--quick",
       f"--out_dir={out}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((out / "benchmark.json").read_text())
  return res, (out / "benchmark.md").read_text()


def test_quick_top_level_and_machine(quick_run):
  res, md = quick_run
  assert res["schema_version"] == bm.SCHEMA_VERSION
  assert res["mode"] == "quick"
  assert res["wall_s"] > 0
  m = res["machine"]
  assert isinstance(m["cpu_model"], str) and m["usable_cores"] >= 1
  assert m["versions"]["tensorflow"].startswith("2.")
  assert len(m["loadavg_start"]) == 3 and isinstance(m["shared"], bool)
  assert set(res["sections"]) == set(bm.SECTIONS)
  for name, sec in res["sections"].items():
    assert sec["status"] == "ok", (name, sec.get("reason"),
                                   sec.get("traceback"))
  assert "## Targets" in md and "## Machine" in md


def test_quick_saliency_rows(quick_run):
  rows = quick_run[0]["sections"]["saliency"]["rows"]
  assert sorted(r["method"] for r in rows) == sorted(saliency.METHODS)
  for r in rows:
    _is_stat(r["train_step_s"], "s") and _is_stat(r["prune_steady_s"], "s")
    ratio = r["ratio_to_step"]
    _is_stat(ratio, "ratio")
    # Paired ratios: each round's prune time over that round's step time.
    np.testing.assert_allclose(
        ratio["samples"],
        np.divide(r["prune_steady_s"]["samples"], r["train_step_s"]["samples"]))
    assert r["prune_first_s"] > 0 and r["tracing_s"] >= 0
    assert r["rounds"] == (3 if r["method"] == "synflow" else 1)


def test_quick_training_and_pipeline(quick_run):
  secs = quick_run[0]["sections"]
  rows = {r["variant"]: r for r in secs["training"]["rows"]}
  assert set(rows) == {"dense", "tfmot", "masking"}
  assert rows["dense"]["ratio_to_dense"]["samples"] == [1.0] * len(
      rows["dense"]["ratio_to_dense"]["samples"])
  for r in rows.values():
    _is_stat(r["images_per_s"], "images/s") and _is_stat(r["ratio_to_dense"])
  p = secs["pipeline"]
  _is_stat(p["images_per_s"], "images/s")
  assert p["ratio_to_training"] == pytest.approx(
      p["images_per_s"]["median"] / p["training_images_per_s"])
  _is_stat(p["fit_live_ratio_to_cached"], "ratio")


def test_quick_tflite_sizes_shrink_with_sparsity(quick_run):
  sec = quick_run[0]["sections"]["tflite"]
  rows = {(r["sparsity"], r["quantize"]): r for r in sec["rows"]}
  ref = rows[(0.0, "none")]
  assert ref["size_ratio"] == 1.0 and ref["sparse"] is False
  for r in sec["rows"]:
    assert r["size_ratio"] == pytest.approx(r["size_bytes"]
                                            / sec["reference_bytes"])
    _is_stat(r["latency_ms"], "ms")
  # Real behaviour, not timing: pruned exports are smaller files.
  assert rows[(0.95, "none")]["size_bytes"] < ref["size_bytes"]
  assert rows[(0.95, "dynamic")]["size_bytes"] < ref["size_bytes"]


def test_quick_memory_and_targets(quick_run):
  res, md = quick_run
  mem = res["sections"]["memory"]
  assert (mem["peak_rss_during_prune_bytes"] >= mem["rss_before_prune_bytes"]
          > mem["input_batch_bytes"] > 0)
  assert mem["ru_maxrss_after_prune_bytes"] >= mem["peak_rss_during_prune_bytes"] * 0.9
  names = [t["name"] for t in res["targets"]]
  assert any(n.startswith("sbp saliency") for n in names)
  assert any(n.startswith("TFLite size at 95%") for n in names)
  for t in res["targets"]:
    assert t["op"] in ("<=", ">=") and t["value"] > 0
    expect = t["value"] <= t["limit"] if t["op"] == "<=" else (
        t["value"] >= t["limit"])
    assert t["met"] is expect
    assert t["name"] in md


def test_quick_keras3_beside_tf_keras(quick_run):
  res, md = quick_run
  sec = res["sections"]["keras3"]
  methods = res["settings"]["keras3_methods"]
  sal = {(r["path"], r["method"]): r for r in sec["saliency_rows"]}
  assert set(sal) == {(p, m) for p in ("tf_keras", "keras3") for m in methods}
  ref = res["settings"]["saliency_models"][0]
  for (path, method), r in sal.items():
    # The saliency section's first model and batch on both paths.
    assert (r["model"], r["batch_size"]) == (ref[0], ref[1])
    _is_stat(r["train_step_s"], "s") and _is_stat(r["prune_steady_s"], "s")
    np.testing.assert_allclose(
        r["ratio_to_step"]["samples"],
        np.divide(r["prune_steady_s"]["samples"], r["train_step_s"]["samples"]))
  fit = {(r["path"], r["variant"]): r for r in sec["fit_rows"]}
  assert set(fit) == {(p, v) for p in ("tf_keras", "keras3")
                      for v in ("dense", "masked")}
  for (p, v), r in fit.items():
    assert r["model"] == res["settings"]["train_model"][0]
    assert r["batch_size"] == res["settings"]["train_batch"]
    _is_stat(r["images_per_s"], "images/s") and _is_stat(r["ratio_to_dense"])
    if v == "dense":
      assert r["ratio_to_dense"]["median"] == 1.0
  between = sec["keras3_to_tf_keras"]
  assert set(between["by_method"]) == set(methods)
  for m, b in between["by_method"].items():
    # Paired per round: the median of the per-round ratios.
    np.testing.assert_allclose(
        b["prune_s"]["samples"],
        np.divide(sal[("keras3", m)]["prune_steady_s"]["samples"],
                  sal[("tf_keras", m)]["prune_steady_s"]["samples"]))
    assert b["ratio_to_step"] == pytest.approx(
        sal[("keras3", m)]["ratio_to_step"]["median"]
        / sal[("tf_keras", m)]["ratio_to_step"]["median"])
    t = [t for t in res["targets"]
         if t["name"] == f"{m} prune, Keras 3 beside tf_keras"]
    assert len(t) == 1 and t[0]["value"] == b["prune_s"]["median"]
    assert t[0]["limit"] == 1.10 and t[0]["op"] == "<="
  assert between["masked_images_per_s"] == pytest.approx(
      fit[("keras3", "masked")]["images_per_s"]["median"]
      / fit[("tf_keras", "masked")]["images_per_s"]["median"])
  assert "## Keras3" in md and "| keras3 | masked |" in md
  assert any(t["name"] == "masked training throughput, keras3"
             for t in res["targets"])


def test_quick_fresh_first_call_and_peak_memory(quick_run):
  res, md = quick_run
  rows = res["sections"]["fresh"]["rows"]
  assert [r["method"] for r in rows] == ["train_step", "grasp", "synflow"]
  train = rows[0]
  for r in rows:
    assert r["first_s"] > 0 and r["steady_s"] > 0
    assert r["first_to_steady"] == pytest.approx(r["first_s"] / r["steady_s"])
    assert r["first_increment_bytes"] >= 0
  for r in rows[1:]:
    assert r["peak_to_train_step"] == pytest.approx(
        r["first_increment_bytes"] / max(1, train["first_increment_bytes"]))
  assert rows[2]["rounds"] == 3  # the quick preset's SynFlow rounds
  names = [t["name"] for t in res["targets"]]
  for m in ("grasp", "synflow"):
    assert any(n.startswith(f"first call in a fresh process, {m}")
               for n in names)
    assert any(n.startswith(f"peak memory of prune, {m}") for n in names)
