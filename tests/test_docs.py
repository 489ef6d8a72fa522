"""The docs stay true: links resolve, Python blocks run, the API reference is current.

Conventions for Markdown pages (README.md and docs/*.md):

- every fenced block marked ```python is executed, the blocks of one page in order
  in one namespace, in a fresh temporary folder (blocks make their own data);
- the README and the quickstart are followed as a newcomer would: their bash and
  Python blocks in order, in a fresh folder holding only a virtual environment
  made like the README's set-up, in a shell whose PATH has nothing of the
  package until a block activates it, twice in a row (the second run replaces
  what the first wrote); the set-up lines themselves (installing, the demo) are
  not run;
- a block marked ```python no-run is shown but not executed (use sparingly);
- relative links must point at existing files, and #anchors at existing headings.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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


SHELL_PAGES = ("README.md", "docs/quickstart.md")
"""Pages a newcomer follows in a shell: their bash and Python blocks run in order,
twice (see :func:`test_page_runs_in_a_fresh_shell_twice`)."""

SET_UP = ("pip install", "streamgmm demo")
"""Lines of the set-up commands, not run here: installing needs a network, the
2-million-row demo runs on small data in tests/test_cli.py, and the test suite is
this one."""


def run_blocks(page: Path) -> None:
    namespace = {"__name__": f"docs:{page.name}"}
    for number, block in enumerate(python_blocks(page.read_text()), start=1):
        code = compile(block, f"{page_id(page)} (python block {number})", "exec")
        exec(code, namespace)


IN_PROCESS_PAGES = [
    page for page in PAGES if python_blocks(page.read_text()) and page_id(page) not in SHELL_PAGES
]


@pytest.mark.parametrize("page", IN_PROCESS_PAGES, ids=page_id)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run_blocks(page)


def shell_steps(text: str) -> list[tuple[str, str]]:
    """The page's blocks in order as ("bash" | "python", code), without set-up lines."""
    steps = []
    for info, body in FENCE.findall(text):
        if info.strip() == "python":
            steps.append(("python", body))
        elif info.strip() == "bash":
            lines = [line for line in body.splitlines() if not any(s in line for s in SET_UP)]
            if any(line.strip() for line in lines):
                steps.append(("bash", "\n".join(lines)))
    return steps


def fresh_environment(folder: Path) -> Path:
    """A virtual environment at ``folder/.venv`` as the README's set-up makes it:
    Python, ``activate``, and the package's console scripts in ``.venv/bin``. The
    packages are this checkout and the running environment's (a .pth file), as
    an editable install would give, without a network."""
    import site
    import tomllib

    venv = folder / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "streamgmm-under-test.pth").write_text(
        "\n".join([str(ROOT), *site.getsitepackages()]) + "\n"
    )
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, function = target.split(":")
        script = venv / "bin" / name
        script.write_text(
            f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {module} import {function}\n"
            f"sys.exit({function}())\n"
        )
        script.chmod(0o755)
    return venv


PYTHON_SESSION = textwrap.dedent(
    """
    import json, sys, traceback
    namespace = {"__name__": "__main__"}
    for line in sys.stdin:
        try:
            exec(compile(json.loads(line), "<pasted block>", "exec"), namespace)
            outcome = "ok"
        except BaseException:
            outcome = traceback.format_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        print("\\0" + json.dumps(outcome), flush=True)
    """
)
"""An interactive session's stand-in: runs each block sent on standard input in
one namespace, and answers with a line marked by NUL."""


class PythonSession:
    """``python`` as found on the shell's PATH, with the blocks pasted into it."""

    def __init__(self, environment: dict[str, str], folder: Path) -> None:
        python = shutil.which("python", path=environment["PATH"])
        assert python, f"no python on PATH {environment['PATH']}: the page never activates"
        self.process = subprocess.Popen(
            [python, "-c", PYTHON_SESSION],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=folder,
            env=environment,
        )

    def run(self, code: str) -> tuple[str, str]:
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        output = []
        for line in self.process.stdout:
            if line.startswith("\0"):
                return json.loads(line[1:]), "".join(output)
            output.append(line)
        return "python exited", "".join(output)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def follow_page(page: Path, folder: Path) -> list[str]:
    """Run the page's steps in ``folder`` as a newcomer would in a fresh shell:
    bash blocks in one shell whose variables and folder carry over, Python
    blocks pasted into one ``python`` started from it. Returns what ran."""
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(folder)),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
    }
    session, ran = None, []
    state = folder / ".shell-state"
    try:
        for number, (language, code) in enumerate(shell_steps(page.read_text()), start=1):
            where = f"{page_id(page)}, block {number} ({language})"
            started = time.perf_counter()
            if language == "python":
                session = session or PythonSession(environment, folder)
                outcome, output = session.run(code)
                assert outcome == "ok", f"{where} failed:\n{output}\n{outcome}"
            else:
                script = f"set -eo pipefail\n{code}\nenv -0 > {shlex.quote(str(state))}\n"
                result = subprocess.run(
                    ["/bin/bash", "-c", script],
                    cwd=folder,
                    env=environment,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert result.returncode == 0, (
                    f"{where} failed (exit {result.returncode}):\n{code}\n"
                    f"{result.stdout}{result.stderr}"
                )
                pairs = state.read_text().split("\0")
                environment = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
            ran.append(language)
            print(f"{where}: {time.perf_counter() - started:.1f} s")
    finally:
        if session is not None:
            session.close()
        state.unlink(missing_ok=True)
    return ran


def written_files(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): path.stat().st_mtime_ns
        for path in folder.rglob("*")
        if path.is_file() and ".venv" not in path.parts
    }


@pytest.mark.parametrize("page_name", SHELL_PAGES)
def test_page_runs_in_a_fresh_shell_twice(page_name, tmp_path):
    """Must show 1 of issue 18: a page's commands, pasted in order into a fresh
    shell after the set-up, work, and work again in the same folder."""
    page = ROOT / page_name
    fresh_environment(tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # a clone's folder has them
    ran = follow_page(page, tmp_path)
    assert {"bash", "python"} <= set(ran), ran
    first = written_files(tmp_path)
    assert first, "the blocks wrote no files"
    ran_again = follow_page(page, tmp_path)
    second = written_files(tmp_path)
    assert ran_again == ran
    assert not [name for name in second if ".streamgmm-" in name], "temporaries left"
    rewritten = [name for name, stamp in second.items() if stamp != first.get(name)]
    assert rewritten, "the second run wrote nothing"


def test_api_reference_is_current():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import make_api
    finally:
        sys.path.pop(0)
    assert make_api.render() == (ROOT / "docs" / "api.md").read_text(), (
        "docs/api.md is out of date: run python docs/make_api.py"
    )
