"""Every code block of README.md and docs/*.md runs as written, or says why not.

The rule (docs/architecture.md, "Code blocks in the docs"): a ```python block
runs exactly as written; any other code block (```bash) and a python block
that cannot run alone carry a marker, an HTML comment on the line before
the opening fence:

* ``<!-- snippet: fragment (why) -->``: not run (it needs the reader's
  objects, installs, trains for minutes, needs a GPU ...);
* ``<!-- snippet: continues -->``: runs after the file's previous run
  block, in the names that block left;
* ``<!-- snippet: run by tests/test_x.py -->``: that test runs it as written
  (with checks of its own), so it is not run twice.

Blocks tagged ``text`` or not tagged are literal text (diagrams, layouts,
outputs). Each chain (a block and the ``continues`` blocks after it) runs in
its own namespace in a temporary folder holding a link to ``configs/``,
with ``SBP_DATA_LIMIT=128`` (docs/data.md) so that the README's 10k-image
example runs in about a minute.
"""

import dataclasses
import pathlib
import re
from typing import List, Optional

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
DATA_LIMIT = "128"

_FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"^<!--\s*snippet:\s*(.*?)\s*-->\s*$")
_KINDS = re.compile(r"^(fragment \(.+\)|continues|run by (tests/\S+\.py))$")
_TEXT_TAGS = ("", "text")
_CODE_TAGS = ("python", "bash")


@dataclasses.dataclass
class Block:
  doc: pathlib.Path
  line: int            # 1-based line of the opening fence
  tag: str
  code: str
  marker: Optional[str]

  @property
  def where(self) -> str:
    doc = (self.doc.relative_to(REPO) if self.doc.is_relative_to(REPO)
           else self.doc.name)
    return f"{doc}:{self.line}"


def blocks(doc: pathlib.Path) -> List[Block]:
  """The fenced blocks of ``doc``, each with the marker on the line before."""
  text = doc.read_text()
  out = []
  for m in _FENCE.finditer(text):
    before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
    marker = _MARKER.match(before)
    out.append(Block(doc, text.count("\n", 0, m.start()) + 1, m.group(1),
                     m.group(2), marker.group(1) if marker else None))
  return out


def chains() -> List[List[Block]]:
  """Runnable chains: an unmarked python block plus the continues after it."""
  out = []
  for doc in DOCS:
    for b in blocks(doc):
      if b.tag == "python" and b.marker is None:
        out.append([b])
      elif b.marker == "continues" and out and out[-1][0].doc == doc:
        out[-1].append(b)
  return out


def check(docs) -> List[str]:
  """One line per block of ``docs`` that breaks the rule (module doc)."""
  problems = []
  for doc in docs:
    run_before = False
    for b in blocks(doc):
      if b.tag not in _TEXT_TAGS + _CODE_TAGS:
        problems.append(f"{b.where}: tag {b.tag!r}; use one of "
                        f"{_CODE_TAGS + ('text',)}")
      if b.tag in _TEXT_TAGS:
        continue
      if b.marker is None:
        if b.tag == "python":
          run_before = True
        else:
          problems.append(f"{b.where}: a {b.tag} block needs a marker")
        continue
      kind = _KINDS.match(b.marker)
      if not kind:
        problems.append(f"{b.where}: unknown marker {b.marker!r}")
      elif b.marker == "continues" and (b.tag != "python" or not run_before):
        problems.append(f"{b.where}: 'continues' needs a python block after "
                        "a run block of the same file")
      elif kind.group(2):
        test = REPO / kind.group(2)
        if not test.exists() or doc.name not in test.read_text():
          problems.append(f"{b.where}: {kind.group(2)} does not exist or "
                          f"does not read {doc.name}")
  return problems


def test_every_code_block_runs_or_is_marked():
  assert not check(DOCS), "\n".join(check(DOCS))


def test_the_rule_catches_each_kind_of_mistake(tmp_path):
  doc = tmp_path / "probe.md"
  doc.write_text(
      "```bash\nls\n```\n\n"                                   # 1: unmarked bash
      "<!-- snippet: continues -->\n```python\nx\n```\n\n"       # 6: nothing before
      "<!-- snippet: fragmnt -->\n```python\nx\n```\n\n"         # 11: typo
      "<!-- snippet: run by tests/test_nope.py -->\n```python\nx\n```\n\n"
      "```sh\nls\n```\n"                                        # 20: unknown tag
      "<!-- snippet: fragment (needs your model) -->\n```bash\nls\n```\n"
      "```python\ny = 1\n```\n<!-- snippet: continues -->\n```python\ny\n```\n")
  found = check([doc])
  where = "probe.md"
  assert found == [
      f"{where}:1: a bash block needs a marker",
      f"{where}:6: 'continues' needs a python block after a run block of the "
      "same file",
      f"{where}:11: unknown marker 'fragmnt'",
      f"{where}:16: tests/test_nope.py does not exist or does not read "
      "probe.md",
      f"{where}:20: tag 'sh'; use one of ('python', 'bash', 'text')",
      f"{where}:20: a sh block needs a marker"]


def _id(chain):
  return chain[0].where


@pytest.mark.slow
@pytest.mark.parametrize("chain", chains(), ids=_id)
def test_snippet_runs_as_written(chain, tmp_path, monkeypatch, capsys,
                                 request):
  code = "".join(b.code for b in chain)
  if "data.load(" in code or "load_file(" in code:
    request.getfixturevalue("shared_data")  # skips without the data folder
  monkeypatch.setenv("SBP_DATA_LIMIT", DATA_LIMIT)
  (tmp_path / "configs").symlink_to(REPO / "configs")
  monkeypatch.chdir(tmp_path)
  namespace = {"__name__": "__snippet__"}
  for b in chain:
    exec(compile(b.code, b.where, "exec"), namespace)  # pylint: disable=exec-used
  out = capsys.readouterr().out
  if "print(" in code:
    assert out.strip(), f"{chain[0].where} printed nothing"
