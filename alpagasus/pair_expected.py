"""Pairwise verdicts from expected scores, and the judge's position bias in words.

Each prompt is judged twice, A shown first and B shown first. A judge that prefers a
position gives each answer a bonus when it is shown first; averaged over both orders, each
answer gets that bonus once, so it cancels:

    mean_A = (E[Assistant 1 | A first] + E[Assistant 2 | B first]) / 2
    mean_B = (E[Assistant 2 | A first] + E[Assistant 1 | B first]) / 2

A wins when mean_A - mean_B > margin, loses when < -margin, else a tie (report.
expected_tie_margin; identical answers are always a tie). Pure functions.
"""

from __future__ import annotations

import statistics
from typing import Any

# At least this share of prompts decided by position (the same position won both orders)
# before the report calls it a position bias.
BIAS_SHARE = 0.1


def expected_means(a_first: list[float | None] | None,
                   b_first: list[float | None] | None) -> tuple[float, float] | None:
    """(mean_A, mean_B) over both orders, or None unless all four expected scores exist."""
    if not a_first or not b_first or None in a_first or None in b_first:
        return None
    mean_a = (a_first[0] + b_first[1]) / 2
    mean_b = (a_first[1] + b_first[0]) / 2
    return round(mean_a, 6), round(mean_b, 6)


def expected_verdict(j: dict[str, Any], margin: float) -> str:
    """A judgment's verdict from its expected means; 'unparsed' when it has none."""
    a, b = j.get("expected_a"), j.get("expected_b")
    if a is None or b is None:
        return "unparsed"
    diff = a - b
    return "win" if diff > margin else "lose" if diff < -margin else "tie"


def position_bias(judgments: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the position, not the answer, decided: per prompt with both orders read,
    did the answer shown first (or second) win both times? And, with expected scores, how
    many points Assistant 1 gets over Assistant 2 on average (over every request)."""
    both = [j for j in judgments if j.get("verdict_a_first") in ("win", "tie", "lose")
            and j.get("verdict_b_first") in ("win", "tie", "lose")]
    # verdict_b_first is A's result when B was shown first: A lost there = the first won.
    first = sum(1 for j in both if j["verdict_a_first"] == "win" and j["verdict_b_first"] == "lose")
    second = sum(1 for j in both if j["verdict_a_first"] == "lose" and j["verdict_b_first"] == "win")
    gaps = [e[0] - e[1] for j in judgments for e in (j.get("expected_a_first"),
                                                      j.get("expected_b_first"))
            if e and None not in e]
    return {"prompts": len(both), "first_won_both": first, "second_won_both": second,
            "first_minus_second_expected": round(statistics.fmean(gaps), 4) if gaps else None,
            "requests_with_expected": len(gaps)}


def describe_bias(bias: dict[str, Any]) -> str:
    """One sentence for the report ("" when no prompt was read in both orders)."""
    n = bias["prompts"]
    if not n:
        return ""
    first, second = bias["first_won_both"], bias["second_won_both"]
    share = max(first, second) / n
    if share >= BIAS_SHARE:
        side = "first" if first >= second else "second"
        head = (f"Position bias: the judge prefers the answer shown {side} — in "
                f"{max(first, second)} of {n} prompts ({share:.0%}) that answer won in both "
                f"orders, whichever answer it was (the other position: {min(first, second)}).")
    else:
        head = (f"No marked position bias: the position decided {first + second} of {n} "
                "prompts (the same position won both orders).")
    gap = bias.get("first_minus_second_expected")
    if gap is not None:
        head += (f" Expected scores: Assistant 1 scores {gap:+.2f} points over Assistant 2 on "
                 f"average over {bias['requests_with_expected']} requests; averaging both "
                 "orders cancels this (report.rule=expected).")
    return head
