"""Uncertainty for pairwise results: a bootstrap CI of the winning score and a sign test.

A test set of 80-250 prompts judged win/tie/lose gives a winning score whose noise is easily
±0.1, the size of the differences the paper reports between filters. So every winning score
comes with:

* a percentile bootstrap CI: the prompts are resampled with replacement (seeded), and the
  winning score recomputed on each resample;
* a one-sided exact sign test of "A better than B": under "neither is better" a decisive
  prompt (win or lose; ties carry no sign) is a win with probability 1/2, so the p-value is
  P(Binomial(win + lose, 1/2) >= win).

Pure functions of the verdict counts or lists; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SIGN = {"win": 1, "tie": 0, "lose": -1}


def winning_score(win: int, tie: int, lose: int) -> float | None:
    """The paper's (#win - #lose) / N + 1 over N = win + tie + lose; None for N = 0."""
    n = win + tie + lose
    return (win - lose) / n + 1 if n else None


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap_ci(verdicts: Sequence[str], resamples: int = 2000, level: float = 0.95,
                 seed: int = 0) -> Interval | None:
    """Percentile bootstrap CI of the winning score over prompts.

    ``verdicts`` holds "win" | "tie" | "lose" per scored prompt (unparsed ones excluded by
    the caller). The winning score is mean(sign) + 1 with sign win=+1, tie=0, lose=-1, so a
    resample is one row of a (resamples x N) index matrix. None when there is no prompt.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level}: must be in (0, 1)")
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: must be >= 1")
    signs = np.array([SIGN[v] for v in verdicts], dtype=np.int8)
    if signs.size == 0:
        return None
    rng = np.random.default_rng(seed)
    scores = np.empty(resamples)
    # In chunks: 2,000 x 250 int64 indices is 4 MB, but a whole test collection could be more.
    chunk = max(1, 2_000_000 // signs.size)
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, signs.size, size=(stop - start, signs.size))
        scores[start:stop] = signs[idx].mean(axis=1) + 1
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return Interval(float(low), float(high))


def sign_test(win: int, lose: int) -> float:
    """One-sided exact sign test p-value for "A better than B" (ties excluded).

    With no decisive prompt there is no evidence either way: p = 1.
    """
    if win < 0 or lose < 0:
        raise ValueError(f"win={win}, lose={lose}: counts must be >= 0")
    if win + lose == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(win, win + lose, 0.5, alternative="greater").pvalue)
