"""Test prompts as the paper evaluated them: inputs in Alpaca's template, categories kept,
answers cut at the template's own headers only."""

from __future__ import annotations

import pytest

from alpagasus.config import ALPACA_STOPS, TestsetsConfig
from alpagasus.data import load_testsets
from alpagasus.prompts import alpaca_prompt
from alpagasus.stages.generate import cut_at_stop
from tests.conftest import SHARED_DATA

PAPER = {name: str(SHARED_DATA / "testsets" / f"{name}_test_set.jsonl")
         for name in ("koala", "vicuna", "wizardlm", "sinstruct")}


@pytest.fixture(scope="module")
def paper_prompts():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return load_testsets(TestsetsConfig(name="paper", files=PAPER))


def test_paper_sets_load_with_inputs_and_categories(paper_prompts):
    by_set = {}
    for p in paper_prompts:
        by_set.setdefault(p.testset, []).append(p)
    assert {k: len(v) for k, v in by_set.items()} == {
        "koala": 180, "vicuna": 80, "wizardlm": 218, "sinstruct": 252}
    assert sum(1 for p in by_set["sinstruct"] if p.input) == 208
    assert all("Input:" not in p.prompt for p in by_set["sinstruct"])  # no folding
    assert {p.category for p in by_set["vicuna"]} >= {"generic", "knowledge", "roleplay",
                                                     "common-sense"}
    assert all(p.category for p in by_set["wizardlm"])  # its `Skill`
    assert len({p.id for p in by_set["wizardlm"]}) == 218


def test_prompt_with_input_uses_the_alpaca_input_template(paper_prompts):
    p = next(p for p in paper_prompts if p.testset == "sinstruct" and p.input)
    text = alpaca_prompt(p.prompt, p.input)
    assert f"### Instruction:\n{p.prompt}\n\n### Input:\n{p.input}\n\n### Response:" in text
    assert p.question == f"{p.prompt}\n\n{p.input}"  # what the judge sees


@pytest.mark.parametrize("raw,expected", [
    ("Paris is the capital.\n\n### Instruction:\nName a city", "Paris is the capital."),
    ("Yes.\n### Input:\nfoo", "Yes."),
    ("Sure.\n### Response:\nagain", "Sure."),
    ("### Instruction:\nWrite more", ""),  # the model opened with the next example
    ("## Plan\n### Step 1\nBoil water.\n### Step 2\nAdd pasta.",
     "## Plan\n### Step 1\nBoil water.\n### Step 2\nAdd pasta."),  # markdown is content
    ("Use `###` to start a heading.", "Use `###` to start a heading."),
])
def test_answers_stop_at_the_template_headers_only(raw, expected):
    assert cut_at_stop(raw, list(ALPACA_STOPS)) == expected
