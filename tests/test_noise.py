"""stage=noise: the figures (against hand counts and a reference alpha), the seeded draws and
field orders, the request count a plan prices, repeats in the reply-cache key (nothing paid
twice, repeat 0 shared with stage=rate), and a real run on the embedded local judge."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from alpagasus import noise
from alpagasus.data import Item
from alpagasus.judges import judge_identity
from alpagasus.main import run
from alpagasus.prompts import PAPER_ORDER, rating_messages, rating_prompt, reordered
from tests.servers import fake_chat

ITEMS = [{"instruction": f"Name a color number {i}.", "input": "" if i % 2 else f"ctx {i}",
          "output": f"Color {i}."} for i in range(8)]


# --- the figures -----------------------------------------------------------------------------

MATRIX = [[4, 4, 5], [3, 4, 4], [1, 1, 1], [2, None, 3]]


def test_spread_flips_and_overlap_by_hand():
    result = noise.analyze(MATRIX, 4.0)
    assert [r["range"] for r in result["per_item"]] == [1, 1, 0, 1]
    assert result["per_item"][0]["std"] == pytest.approx(0.5774, abs=1e-4)
    assert result["per_item"][3]["n"] == 2  # the unparsed score is left out
    assert result["spread"]["varied"] == 0.75 and result["spread"]["ranges"] == {"0": 1, "1": 3}
    # Item 1 is kept in repeats 1 and 2, dropped in repeat 0: the one item that flips.
    assert result["flips"]["flipping_count"] == 1 and result["flips"]["items_flipping"] == 0.25
    # Item 1: 2 m (k - m) / (k (k - 1)) = 2*2*1/6; the others never disagree.
    assert result["flips"]["pairwise"] == pytest.approx((4 / 6) / 4, abs=1e-4)
    overlap = result["overlap"]
    assert overlap["kept_per_repeat"] == [1, 2, 2]
    assert overlap["jaccard_observed"] == pytest.approx((0.5 + 0.5 + 1) / 3, abs=1e-4)
    assert overlap["kept_again_observed"] == pytest.approx(5 / 6, abs=1e-4)
    # E|A∩B| = 1 + 1/3, E|A| = 1 + 2/3: Jaccard (4/3) / (10/3 - 4/3)
    assert overlap["jaccard_expected"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["per_repeat"][1] == {"repeat": 1, "rated": 3, "unparsed": 1, "mean": 3.0}
    assert not result["identical_repeats"]


def _reference_alpha(matrix):
    """Krippendorff's alpha, interval metric, straight from the coincidence definition."""
    units = [[float(v) for v in row if v is not None] for row in matrix]
    units = [u for u in units if len(u) >= 2]
    n = sum(len(u) for u in units)
    d_o = sum(sum((a - b) ** 2 for a, b in itertools.permutations(u, 2)) / (len(u) - 1)
              for u in units) / n
    values = [v for u in units for v in u]
    d_e = sum((a - b) ** 2 for a, b in itertools.permutations(values, 2)) / (n * (n - 1))
    return 1 - d_o / d_e


def test_alpha_is_krippendorffs_interval_alpha():
    rng = random.Random(3)
    matrix = [[rng.choice([None, 1, 2, 3, 3.5, 4, 4.5, 5]) for _ in range(4)] for _ in range(25)]
    got = noise.krippendorff_alpha(matrix)
    assert got["alpha"] == pytest.approx(_reference_alpha(matrix), abs=1e-4)
    assert noise.krippendorff_alpha(MATRIX)["alpha"] == pytest.approx(
        _reference_alpha(MATRIX), abs=1e-4)


def test_alpha_when_repeats_cannot_differ():
    # A greedy judge: every repeat the same, items differ -> 1.0, said why.
    same = noise.analyze([[1, 1, 1], [2, 2, 2], [1.5, 1.5, 1.5]], 1.5)
    assert same["alpha"] == {"alpha": 1.0,
                             "reason": "every item got the same score in every repeat"}
    assert same["identical_repeats"] and same["flips"]["items_flipping"] == 0.0
    assert same["overlap"]["jaccard_observed"] == 1.0
    assert "deterministic" in noise.to_markdown(same)
    # One value everywhere: no variation, alpha undefined (not a division by zero).
    flat = noise.analyze([[2, 2], [2, 2]], 4.5)
    assert flat["alpha"]["alpha"] is None and "no variation" in flat["alpha"]["reason"]
    assert flat["overlap"]["jaccard_observed"] is None  # nothing kept by either repeat
    assert flat["overlap"]["jaccard_expected"] is None
    assert "n/a" in noise.to_markdown(flat)
    # Nothing to pair.
    assert noise.krippendorff_alpha([[3, None], [None, 4]])["alpha"] is None


# --- what is sent ----------------------------------------------------------------------------


def test_sample_is_seeded_capped_and_in_data_order():
    a = noise.sample_positions(100, 10, seed=1)
    assert a == noise.sample_positions(100, 10, seed=1) == sorted(a) and len(set(a)) == 10
    assert a != noise.sample_positions(100, 10, seed=2)
    assert noise.sample_positions(5, 10, seed=1) == [0, 1, 2, 3, 4]
    assert noise.sample_positions(5, None, seed=1) == [0, 1, 2, 3, 4]


def test_perturbed_orders_are_seeded_and_never_the_papers():
    assert noise.field_order(0, 7, 0, perturb=True) == PAPER_ORDER  # repeat 0: the rating's
    assert noise.field_order(0, 7, 3, perturb=False) == PAPER_ORDER
    orders = {noise.field_order(0, i, r, perturb=True) for i in range(40) for r in (1, 2)}
    assert PAPER_ORDER not in orders and len(orders) == 5
    assert noise.field_order(5, 3, 1, True) == noise.field_order(5, 3, 1, True)


def test_reordered_prompt_moves_whole_blocks_and_has_its_own_hash():
    template = rating_prompt("accuracy")
    assert reordered(template, PAPER_ORDER) is template
    other = reordered(template, ("output", "instruction", "input"))
    assert other.hash != template.hash and other.name == "accuracy@output-instruction-input"
    item = Item("Add 2 and 3.", "", "5")
    user = rating_messages(other, item)[1]["content"]
    assert user.startswith("### Response:\n5\n\n###Instruction:\nAdd 2 and 3.\n\n### Input:\n\n\n")
    assert user.endswith(rating_messages(template, item)[1]["content"].split("### Response:\n5\n\n")[1])
    with pytest.raises(ValueError, match="permutation"):
        reordered(template, ("output", "output", "input"))


def test_request_count_for_the_plan(compose_cfg):
    cfg = compose_cfg("filter=chatgpt", "judge=chatgpt_paper", "noise.sample=30",
                      "noise.repeats=4")
    # Repeat 0 at the judge's temperature is stage=rate's request: 3 repeats on top.
    assert noise.noise_request_count(cfg, n_items=1000) == 90
    assert noise.noise_request_count(cfg, n_items=10) == 30  # the sample is capped
    hot = compose_cfg("filter=chatgpt", "judge=chatgpt_paper", "noise.sample=30",
                      "noise.repeats=4", "noise.temperature=0.7")
    assert noise.noise_request_count(hot, n_items=1000) == 120
    same = compose_cfg("filter=chatgpt", "judge=chatgpt_paper", "noise.sample=null",
                       "noise.repeats=2", "noise.temperature=0")
    assert noise.noise_request_count(same, n_items=7) == 7


def test_config_checks(compose_cfg):
    from alpagasus.config import ConfigError
    from alpagasus.validation import validate

    for bad, message in (("noise.repeats=1", "repeats=1"), ("noise.sample=0", "sample=0"),
                         ("noise.temperature=-1", "temperature=-1")):
        with pytest.raises(ConfigError, match=message):
            validate(compose_cfg(bad))


def test_local_judge_sampling_has_keys_of_its_own(compose_cfg):
    greedy = compose_cfg().judge
    assert "logits_sampling" not in judge_identity(greedy)  # existing artifacts keep their keys
    hot = compose_cfg("judge.temperature=0.7").judge
    assert judge_identity(hot)["logits_sampling"] == "digit-v1"


# --- the stage on an API judge -------------------------------------------------------------


def _scores_in_turn():
    """A judge whose reply for an item depends on how often it was asked: real noise."""
    asked: dict[str, int] = {}

    def reply(messages):
        user = messages[-1]["content"]
        asked[user] = asked.get(user, 0) + 1
        return f"{[4.5, 4.0, 5.0, 3.5][(asked[user] + len(user)) % 4]}\nreason"

    return reply


def _cfg(tiny_cfg, data, url, *extra):
    return tiny_cfg("stage=noise", "filter=chatgpt", "judge=chatgpt_paper", "data=json",
                    f"data.path={data}", "data.limit=null", f"judge.base_url={url}",
                    "judge.model=fake-judge", "logger.enabled=false", "rate.progress=false",
                    "threshold=4.5", *extra)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    path = tmp_path / "items.json"
    path.write_text(json.dumps(ITEMS + ITEMS[:2]))  # two exact duplicates: counted once
    return path


def _artifact(root: Path, stage: str) -> Path:
    [path] = [p for p in (root / "artifacts" / stage).iterdir() if (p / "manifest.json").is_file()]
    return path


def test_repeats_are_paid_once_and_repeat_zero_is_the_rating(tiny_cfg, tmp_path, data):
    with fake_chat(_scores_in_turn()) as judge:
        run(_cfg(tiny_cfg, data, judge.url, "stage=rate"))
        assert len(judge.requests) == len(ITEMS)  # duplicates sent once
        cfg = _cfg(tiny_cfg, data, judge.url, "noise.sample=5", "noise.repeats=3")
        run(cfg)
        # Repeat 0 came from the rating's cache; repeats 1 and 2 were sent.
        assert len(judge.requests) == len(ITEMS) + noise.noise_request_count(cfg, len(ITEMS))
        assert len(judge.requests) == len(ITEMS) + 10
        art = _artifact(tmp_path, "noise")
        result = json.loads((art / "noise.json").read_text())
        assert result["items"] == 5 and result["repeats"] == 3
        assert result["setup"]["repeat0_shared"] and result["setup"]["threshold"] == 4.5
        assert [r["rated"] for r in result["per_repeat"]] == [5, 5, 5]
        assert not result["identical_repeats"]  # the fake judge is noisy
        assert sorted(r["index"] for r in result["per_item"]) == sorted(
            noise.sample_positions(len(ITEMS), 5, 0))
        assert "Krippendorff" in (art / "noise.md").read_text()
        assert (art / "noise.png").read_bytes()[:4] == b"\x89PNG"
        counts = json.loads((art / "manifest.json").read_text())["counts"]
        assert counts["flip_rate"] == result["flips"]["items_flipping"]

        # Again, and with one more repeat: only the new repeat is sent.
        run(cfg)
        assert len(judge.requests) == len(ITEMS) + 10
        run(_cfg(tiny_cfg, data, judge.url, "noise.sample=5", "noise.repeats=4"))
        assert len(judge.requests) == len(ITEMS) + 15
        # Every temperature in the requests is the judge's own (0, the paper's).
        assert {r["temperature"] for r in judge.requests} == {0.0}


def test_stated_temperature_and_perturbed_orders(tiny_cfg, tmp_path, data):
    with fake_chat(_scores_in_turn()) as judge:
        run(_cfg(tiny_cfg, data, judge.url, "noise.sample=4", "noise.repeats=3",
                 "noise.temperature=0.7", "noise.perturb_order=true", "noise.seed=3"))
        assert len(judge.requests) == 12  # no rating to share: every repeat is sent
        assert {r["temperature"] for r in judge.requests} == {0.7}
        users = [r["messages"][-1]["content"] for r in judge.requests]
        paper = [u for u in users if u.startswith("###Instruction:")]
        assert len(paper) == 4  # repeat 0 only: repeats 1, 2 show the blocks in another order
        for user in users:  # every block still there, once
            assert user.count("###Instruction:") == user.count("### Input:") == \
                user.count("### Response:") == 1
        rows = [json.loads(x) for x in
                (sorted((tmp_path / "artifacts" / "noise_repeat").glob("*/ratings.jsonl"))[0]
                 ).read_text().splitlines()]
        assert all(len(r["order"]) == 3 for r in rows)
        result = json.loads((_artifact(tmp_path, "noise") / "noise.json").read_text())
        assert result["setup"]["perturb_order"] and not result["setup"]["repeat0_shared"]


def test_a_deterministic_judge_is_reported_cleanly(tiny_cfg, tmp_path, data):
    with fake_chat(lambda messages: f"{len(messages[-1]['content']) % 3 + 3}\nsame") as judge:
        run(_cfg(tiny_cfg, data, judge.url, "noise.sample=6", "noise.repeats=2"))
        result = json.loads((_artifact(tmp_path, "noise") / "noise.json").read_text())
        assert result["identical_repeats"] and result["flips"]["items_flipping"] == 0.0
        assert result["alpha"]["alpha"] in (1.0, None)
        assert "deterministic" in (_artifact(tmp_path, "noise") / "noise.md").read_text()


def test_neither_arm_rates(tiny_cfg):
    from alpagasus.selection import SelectionError

    with pytest.raises(SelectionError, match="neither arm rates"):
        run(tiny_cfg("stage=noise", "filter=random", "baseline=all", "size=3",
                     "logger.enabled=false"))


# --- the embedded local judge, as a user runs it ---------------------------------------------


@pytest.mark.slow
def test_noise_on_the_embedded_local_judge(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "alpagasus", "stage=noise", "data.limit=12", "noise.sample=4",
           "noise.repeats=2", "noise.temperature=0.7", f"paths.root={tmp_path}",
           "logger.enabled=false", f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((run_dir / "noise.json").read_text())
    assert (run_dir / "noise.md").is_file() and (run_dir / "noise.png").is_file()
    assert result["setup"]["model"] == "embedded:smollm2" and result["setup"]["temperature"] == 0.7
    assert result["items"] == 4 and [r["rated"] for r in result["per_repeat"]] == [4, 4]
    replies = [json.loads(x)["reply"] for p in (tmp_path / "artifacts" / "noise_repeat").glob(
        "*/ratings.jsonl") for x in p.read_text().splitlines()]
    assert all("sampled at temperature 0.7" in r for r in replies)
    assert "Judge noise: local" in out.stdout


def test_local_judge_samples_its_score_digit_reproducibly(compose_cfg, tiny_lm):
    from alpagasus.judges.local import LocalJudge
    from alpagasus.parsing import parse_rating

    requests = [rating_messages(rating_prompt("accuracy"), Item(f"Say {i}.", "", f"{i}"))
                for i in range(8)]
    hot = compose_cfg(f"judge.model={tiny_lm}", "judge.temperature=1.0").judge

    def replies(cfg, seed):
        judge = LocalJudge(cfg, "/nonexistent", seed=seed)
        try:
            return [r.text for r in judge.complete(requests, "rating", desc="t")]
        finally:
            judge.close()

    first = replies(hot, 1)
    assert first == replies(hot, 1)  # a repeat is rebuilt exactly from its seed
    assert first != replies(hot, 2)
    scores = [parse_rating(t).score for t in first]
    assert all(s in (0, 1, 2, 3, 4, 5) for s in scores) and len(set(scores)) > 1
    assert all("sampled at temperature 1" in t for t in first)
    greedy = replies(compose_cfg(f"judge.model={tiny_lm}").judge, None)
    assert all("expected" in t for t in greedy)  # temperature 0: the expectation, as before
