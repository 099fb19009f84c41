"""The commands in README.md and docs/*.md compose, so the docs do not rot; their links resolve.

Every line of a fenced ```bash block that runs alpagasus (`alpagasus ...`, `python -m alpagasus
...`, `accelerate launch ... -m alpagasus ...`, `torchrun ... -m alpagasus ...`) is composed
in-process with Hydra's compose API, every job of a multirun (`-m`) included, and validated as
`alpagasus` validates before it spends anything (the typed schema; the training checks for
the stages that train); nothing runs. `--help` and `--hydra-help` are really run.

Markers, an HTML comment on the line right above the fence, apply to the whole block:
  <!-- docs-test: compose-only (why) -->  compose only, skip the validation: commands that need
                                         a GPU, an API key or a file of the reader's
  <!-- docs-test: pending (why) -->       a command that lands with another change: it must NOT
                                         compose yet; once it does, the test says to drop
                                         the marker
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from alpagasus.stages import STAGES
from alpagasus.validation import validate
from tests.test_experiments import _compose, study_jobs

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Pages being written elsewhere; links to them are accepted until they land.
PENDING_PAGES: set[str] = set()  # pages linked before they exist (none today)
TOPIC_PAGES = ["configuration-and-groups.md", "judges-and-prices.md", "selection.md",
               "training-and-memory.md", "evaluation-and-benchmarks.md",
               "studies-and-sweeps.md", "outputs-and-artifacts.md", "troubleshooting.md",
               "architecture.md"]
MARKER = re.compile(r"<!--\s*docs-test:\s*([\w-]+)\s*(.*?)\s*-->")
MODES = ("check", "compose-only", "pending")
RUN_FLAGS = ("--help", "-h", "--hydra-help")
MAX_README_LINES = 300


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    args: tuple[str, ...]  # what follows `alpagasus`
    mode: str  # one of MODES
    reason: str


def _alpagasus_args(tokens: list[str]) -> list[str] | None:
    """The arguments of the alpagasus invocation in a shell command, or None if it has none."""
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    if tokens and tokens[-1] == "&":
        tokens = tokens[:-1]
    if tokens and tokens[0] == "alpagasus":
        return tokens[1:]
    for i in range(len(tokens) - 1):  # python -m alpagasus, accelerate launch ... -m alpagasus
        if tokens[i] == "-m" and tokens[i + 1] == "alpagasus":
            return tokens[i + 2:]
    return None


def doc_commands(path: Path) -> list[DocCommand]:
    lines = path.read_text(encoding="utf-8").splitlines()
    commands, fence, mode, reason = [], None, "check", ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            if fence is None:
                fence = line[3:].strip()
                above = MARKER.search(lines[i - 1]) if i else None
                mode, reason = (above.group(1), above.group(2)) if above else ("check", "")
                assert mode in MODES, f"{path.name}:{i}: unknown docs-test marker '{mode}'"
            else:
                fence = None
            i += 1
            continue
        start = i
        while line.endswith("\\") and i + 1 < len(lines):  # continuation lines
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if fence != "bash":
            continue
        args = _alpagasus_args(shlex.split(line, comments=True))
        if args is not None:
            name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
            commands.append(DocCommand(f"{name}:{start + 1}", tuple(args), mode, reason))
    return commands


ALL_COMMANDS = [c for f in DOC_FILES for c in doc_commands(f)]


def _split(args: tuple[str, ...]) -> tuple[bool, list[str], set[str]]:
    """(multirun, overrides, other flags) of an alpagasus command line."""
    multirun, overrides, flags = False, [], set()
    it = iter(args)
    for arg in it:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in ("--cfg", "-c", "--package", "-p"):
            flags.add(f"{arg} {next(it)}")
        elif arg.startswith("-"):
            flags.add(arg)
        else:
            overrides.append(arg)
    return multirun, overrides, flags


@cache
def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "alpagasus", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@cache
def _jobs(multirun: bool, overrides: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [tuple(j) for j in study_jobs(*overrides)] if multirun else [overrides]


@cache
def _composed(job: tuple[str, ...]):
    """The config of one job, or the composition error; docs repeat jobs (cached)."""
    try:
        return _compose(*job)
    except ConfigCompositionException as e:
        return e


@cache
def _checked(job: tuple[str, ...]) -> None:
    _check(_composed(job))


def _check(cfg) -> None:
    """What alpagasus checks before it spends anything, short of reading files or models."""
    typed = validate(cfg)
    if STAGES[typed.stage.value].trains:
        from alpagasus.stages import train  # imports torch: only for the commands that train

        train.validate(typed)


def test_the_docs_have_commands():
    assert len(ALL_COMMANDS) >= 30
    assert any(c.where.startswith("README.md") for c in ALL_COMMANDS)


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[c.where for c in ALL_COMMANDS])
def test_doc_command(command: DocCommand):
    where = f"{command.where}: alpagasus {shlex.join(command.args)}"
    multirun, overrides, flags = _split(command.args)
    unknown = flags - set(RUN_FLAGS) - {"--cfg job", "--cfg hydra", "--cfg all", "--resolve"}
    assert not unknown, f"{where}: flags this test does not know: {unknown}"
    if flags & set(RUN_FLAGS):  # cheap and offline: really run it
        out = _run_cli(*command.args)
        assert out.returncode == 0 and out.stdout.strip(), f"{where}\n{out.stderr}"
        return
    try:  # a multirun composes its sweep first
        jobs = _jobs(multirun, tuple(overrides))
    except ConfigCompositionException as e:
        jobs, errors = [], [(tuple(overrides), e)]
    else:
        errors = [(job, cfg) for job in jobs if isinstance(cfg := _composed(job), Exception)]
    if command.mode == "pending":
        assert errors, f"{where} composes now: remove its 'docs-test: pending' marker"
        return
    for job, error in errors:
        pytest.fail(f"{where}: job {' '.join(job)} does not compose: {error.__cause__ or error}")
    if command.mode == "check":
        for job in jobs:
            _checked(job)


def test_commands_and_markers_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("\n".join([
        "```bash", "alpagasus stage=rate \\", "    filter=chatgpt   # rate", "make run", "```",
        "<!-- docs-test: compose-only (needs a GPU) -->", "```bash",
        "OMP_NUM_THREADS=1 python -m alpagasus -m threshold=1,2",
        "accelerate launch --config_file conf/accelerate/ddp.yaml -m alpagasus stage=train",
        "```", "```", "alpagasus not-bash", "```",
        "<!-- docs-test: pending (lands later) -->", "```bash", "alpagasus stage=plan", "```"]))
    commands = doc_commands(page)
    assert [(c.args, c.mode, c.reason) for c in commands] == [
        (("stage=rate", "filter=chatgpt"), "check", ""),
        (("-m", "threshold=1,2"), "compose-only", "(needs a GPU)"),
        (("stage=train",), "compose-only", "(needs a GPU)"),
        (("stage=plan",), "pending", "(lands later)")]
    assert commands[0].where == "page.md:2"
    page.write_text("<!-- docs-test: sometimes -->\n```bash\nalpagasus\n```\n")
    with pytest.raises(AssertionError, match="unknown docs-test marker"):
        doc_commands(page)


def test_markers_say_why():
    for c in ALL_COMMANDS:
        if c.mode != "check":
            assert c.reason, f"{c.where}: a docs-test marker needs a reason"


# --- links and pages ---------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors, fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return LINK.findall(text)


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_links_resolve(path: Path):
    for link in _links(path):
        if re.match(r"[a-z]+:", link):  # http(s), mailto
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            assert file.name in PENDING_PAGES, f"{path.name}: link to a missing file: {link}"
            continue
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{path.name}: no heading for #{anchor} in {link}"


def test_index_and_readme_link_every_page():
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert set(TOPIC_PAGES) <= pages
    index_links = {link.partition("#")[0] for link in _links(REPO / "docs" / "index.md")}
    assert pages | PENDING_PAGES <= index_links
    readme_links = {Path(link.partition("#")[0]).name for link in _links(REPO / "README.md")}
    assert {"index.md", *TOPIC_PAGES} <= readme_links


def test_readme_is_short_and_its_make_targets_exist():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= MAX_README_LINES
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    for target in re.findall(r"^make (\w+)", readme, flags=re.M):
        assert target in targets, f"README runs `make {target}`: no such Makefile target"
    assert {"run", "test"} <= set(re.findall(r"^make (\w+)", readme, flags=re.M))
