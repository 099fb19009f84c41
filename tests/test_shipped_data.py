"""The paper's four test sets and MT-Bench's files ship with the package: byte-identical to
../shared/data (sha256 from its README), each named in a license file, and found by
`testsets=paper` and `benchmark=mt_bench` with no path (a path still overrides)."""

from __future__ import annotations

import hashlib
import re

import pytest

from alpagasus.artifacts import ArtifactStore
from alpagasus.context import RunContext
from alpagasus.data import load_testsets
from alpagasus.evals import get_benchmark
from alpagasus.evals.mt_bench import load_mt_bench
from alpagasus.shipped import SHIPPED, shipped_path
from alpagasus.tracking import Tracker
from tests.conftest import SHARED_DATA

# ../shared/data/README.md's sha256 of each file shipped.
SHA256 = {
    "testsets/koala_test_set.jsonl":
        "c8cda5c53810dc30aad34fabbb828fe3eba0957119e00916650c971905d19886",
    "testsets/vicuna_test_set.jsonl":
        "590c39157bc561eadd7f03cad4be18c2b597f93029780af65f86718f39eafa87",
    "testsets/wizardlm_test_set.jsonl":
        "1a39103c4ad7e0b68a0f7ed770f13a60cc60749418263dafb20cfe8f5e51901e",
    "testsets/sinstruct_test_set.jsonl":
        "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e",
    "mt_bench/question.jsonl":
        "a39d5d01675239a264ef5265ad1fe63975d888124ab72687b83aacd7515e1ec0",
    "mt_bench/judge_prompts.jsonl":
        "fe3f314f7cd156620960c2bf4508e9218e07ae14e9e0164a82b5e6eae3231f03",
    "mt_bench/reference_answer_gpt-4.jsonl":
        "c320326eb84e0f1931abd8c72d37742b925bc592621a37531b7f2918d9931146",
}
PAPER_COUNTS = {"koala": 180, "vicuna": 80, "wizardlm": 218, "sinstruct": 252}


def _shipped(rel: str):
    folder, name = rel.split("/")
    return shipped_path(folder) / name


@pytest.mark.parametrize("rel", sorted(SHA256))
def test_shipped_file_is_the_published_one(rel):
    data = _shipped(rel).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256[rel]
    shared = SHARED_DATA / rel
    if shared.is_file():  # and byte for byte the copy in ../shared/data
        assert data == shared.read_bytes()


def test_every_shipped_file_is_licensed_and_nothing_else_ships():
    for folder in SHIPPED:
        files = {p.name for p in shipped_path(folder).iterdir()}
        data = {rel.split("/")[1] for rel in SHA256 if rel.startswith(folder + "/")}
        assert files == data | {"LICENSES.md"}, folder  # no stray or missing file
        licenses = (shipped_path(folder) / "LICENSES.md").read_text()
        for name in data:  # each file has its table row: source and license
            row = next(line for line in licenses.splitlines() if line.startswith(f"| {name} |"))
            assert re.search(r"Apache-2\.0|CC BY-NC", row), row
    assert "Apache License" in (shipped_path("testsets").parent / "APACHE-2.0.txt").read_text()


def test_paper_testsets_need_no_dir(compose_cfg, monkeypatch):
    monkeypatch.delenv("ALPAGASUS_TESTSETS_DIR", raising=False)
    cfg = compose_cfg("testsets=paper")
    assert cfg.testsets.dir == str(shipped_path("testsets"))
    prompts = load_testsets(cfg.testsets)
    assert {n: sum(p.testset == n for p in prompts) for n in PAPER_COUNTS} == PAPER_COUNTS


def test_testsets_dir_still_overrides(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("ALPAGASUS_TESTSETS_DIR", raising=False)
    for name in PAPER_COUNTS:
        (tmp_path / f"{name}_test_set.jsonl").write_text(f'{{"prompt": "my {name} question"}}\n')
    cfg = compose_cfg("testsets=paper", f"testsets.dir={tmp_path}")
    prompts = load_testsets(cfg.testsets)
    assert [p.prompt for p in prompts] == [f"my {n} question" for n in PAPER_COUNTS]
    monkeypatch.setenv("ALPAGASUS_TESTSETS_DIR", str(tmp_path))
    assert len(load_testsets(compose_cfg("testsets=paper").testsets)) == 4


def test_mt_bench_needs_no_path(tiny_cfg, tmp_path):
    cfg = tiny_cfg("benchmark=mt_bench", "eval_judge=gpt4")
    assert cfg.benchmark.path == str(shipped_path("mt_bench"))
    bench = load_mt_bench(cfg.benchmark.path)
    assert len(bench.questions) == 80
    assert sum(q.needs_reference for q in bench.questions) == 30
    # benchmark.path=null is the shipped copy too (what the stage reads, before any model).
    cfg = tiny_cfg("benchmark=mt_bench", "benchmark.path=null", "eval_judge=gpt4")
    ctx = RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts), tracker=Tracker.off())
    prepared = get_benchmark("mt_bench").prepare(ctx)
    assert len(prepared.questions) == 80
    assert prepared.files["questions"] == str(shipped_path("mt_bench") / "question.jsonl")
