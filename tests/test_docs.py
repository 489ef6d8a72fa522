"""The docs stay true: links resolve, Python blocks run, the API reference is current.

Conventions for Markdown pages (README.md and docs/*.md):

- every fenced block marked ```python is executed, the blocks of one page in order
  in one namespace, in a fresh temporary folder (blocks make their own data); the
  README's and the quickstart's blocks then run a second time in the same folder,
  followed by the ``streamgmm`` commands of their bash blocks (which replace the
  model, labels and plot the Python wrote);
- a block marked ```python no-run is shown but not executed (use sparingly);
- relative links must point at existing files, and #anchors at existing headings.
"""

import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamgmm.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python_blocks(text: str) -> list[str]:
    return [body for info, body in FENCE.findall(text) if info.strip() == "python"]


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a page."""
    anchors = set()
    for line in FENCE.sub("", text).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_there_are_pages_and_blocks():
    names = {page_id(page) for page in PAGES}
    assert {"README.md", "docs/index.md", "docs/quickstart.md", "docs/user-guide.md"} <= names
    assert len(python_blocks((ROOT / "docs" / "quickstart.md").read_text())) >= 5


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_resolve(page):
    text = FENCE.sub("", page.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no {destination}")
        elif anchor and destination.suffix == ".md":
            if anchor not in heading_anchors(destination.read_text()):
                broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert not broken, f"broken links in {page_id(page)}: {broken}"


def test_index_links_every_docs_page():
    index = (ROOT / "docs" / "index.md").read_text()
    linked = {Path(target.partition("#")[0]).name for target in LINK.findall(index)}
    pages = {page.name for page in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


RUN_TWICE = {"README.md", "docs/quickstart.md"}
"""Pages whose blocks run twice in a row in one folder, as a user rerunning them
would: the second run replaces what the first wrote."""


def run_blocks(page: Path) -> None:
    namespace = {"__name__": f"docs:{page.name}"}
    for number, block in enumerate(python_blocks(page.read_text()), start=1):
        code = compile(block, f"{page_id(page)} (python block {number})", "exec")
        exec(code, namespace)


def written_files(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): path.stat().st_mtime_ns
        for path in folder.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize(
    "page", [page for page in PAGES if python_blocks(page.read_text())], ids=page_id
)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run_blocks(page)
    if page_id(page) in RUN_TWICE:
        first = written_files(tmp_path)
        run_blocks(page)
        second = written_files(tmp_path)
        assert first, "the blocks wrote no files"
        assert not [name for name in second if ".streamgmm-" in name], "temporaries left"
        rewritten = [name for name, stamp in second.items() if stamp != first.get(name)]
        assert rewritten, "the second run wrote nothing"
        for command in command_lines(page.read_text()):
            result = CliRunner().invoke(main, shlex.split(command), catch_exceptions=False)
            assert result.exit_code == 0, f"{command}: {result.output}"


def command_lines(text: str) -> list[str]:
    """The ``streamgmm`` commands of a page's bash blocks that work on the files
    its Python blocks wrote (not the demo, not installation)."""
    return [
        line.split("#")[0].strip().removeprefix("streamgmm ")
        for info, body in FENCE.findall(text)
        if info.strip() == "bash"
        for line in body.splitlines()
        if line.startswith("streamgmm ") and not line.startswith("streamgmm demo")
    ]


def test_api_reference_is_current():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import make_api
    finally:
        sys.path.pop(0)
    assert make_api.render() == (ROOT / "docs" / "api.md").read_text(), (
        "docs/api.md is out of date: run python docs/make_api.py"
    )
