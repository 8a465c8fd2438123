"""The shape of the code: small functions, one place per private internal."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1] / "sbp_tf"
MAX_LINES = 60  # lines of code per function, its docstring not counted


def _long_functions():
  out = []
  for path in sorted(ROOT.rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      lines = node.end_lineno - node.lineno + 1
      doc = node.body[0] if node.body else None
      if (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
          and isinstance(doc.value.value, str)):
        lines -= doc.end_lineno - doc.lineno + 1
      if lines > MAX_LINES:
        out.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} "
                   f"{node.name} ({lines} lines)")
  return out


def test_no_function_is_longer_than_60_lines():
  assert not _long_functions(), "split these: " + "; ".join(_long_functions())


def test_private_keras_internals_only_in_compat():
  # An attribute access (.name) or a getattr string ("name") of each.
  private = re.compile(r"[.\"']_(is_graph_network|nodes_by_depth|"
                       r"flatten_layers|batch_input_shape|constraint)\b")
  hits = []
  for path in sorted(ROOT.rglob("*.py")):
    if path.name == "compat.py":
      continue
    for i, line in enumerate(path.read_text().splitlines(), 1):
      if private.search(line):
        hits.append(f"{path.relative_to(ROOT.parent)}:{i}")
  assert not hits, "use sbp_tf.compat's adapters at " + ", ".join(hits)
