"""sbp_tf.files (atomic writes) and sbp_tf.markdown (tables)."""

import json
import os

import pytest

from sbp_tf import files
from sbp_tf import markdown


def test_table_cells_alignment_and_empty_cells():
  t = markdown.table(["", "kept", "density"],
                     [["a", 3, 0.25], ["**total**", "", 1 / 3]], align="lrr")
  assert t.splitlines() == ["| | kept | density |", "|---|---:|---:|",
                            "| a | 3 | 0.2500 |",
                            "| **total** | | 0.3333 |"]
  assert markdown.table(["x"], [[None]]) == "| x |\n|---|\n| |\n"


def test_table_bad_shapes_are_named():
  with pytest.raises(ValueError, match="row 1 has 1 cells, the header 2"):
    markdown.table(["a", "b"], [[1, 2], [3]])
  with pytest.raises(ValueError, match="align='lx'"):
    markdown.table(["a", "b"], [], align="lx")


def test_atomic_write_replaces_only_on_success(tmp_path):
  p = tmp_path / "r.json"
  files.write_json(p, {"b": 1, "a": 2.5})
  assert json.loads(p.read_text()) == {"a": 2.5, "b": 1}
  assert p.read_text().index('"a"') < p.read_text().index('"b"')  # sorted
  with pytest.raises(RuntimeError):
    with files.atomic(p, "w") as f:
      f.write("half a file")
      raise RuntimeError("killed")
  assert json.loads(p.read_text()) == {"a": 2.5, "b": 1}  # unchanged
  assert sorted(os.listdir(tmp_path)) == ["r.json"]  # no temp file left


def test_atomic_write_honours_the_umask(tmp_path):
  old = os.umask(0o027)
  try:
    files.write_text(tmp_path / "t.txt", "x")
  finally:
    os.umask(old)
  assert (tmp_path / "t.txt").stat().st_mode & 0o777 == 0o640
