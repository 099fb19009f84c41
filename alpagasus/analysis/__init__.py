"""Comparing selections: pure statistics (scipy, scikit-learn) and markdown/PNG writers.

Inputs are plain lists, one entry per distinct data item: which items each selection keeps,
its scores (a judge's 0-5, IFD) and ranking when it has them, and optionally reference labels
(membership in a released filtered file). `stage=analyze` (alpagasus/stages/analyze.py)
builds them from artifacts; `sweep_section` does the same from a finished sweep's results.

Modules, importing downward: ``compare`` (the statistics), ``markdown`` (tables),
``figures`` (PNG), ``sweeps`` (the sweep report's section). Their public names are
re-exported here.
"""

from __future__ import annotations

from alpagasus.analysis.compare import (
    Features,
    SelectionView,
    against_reference,
    agreement,
    analyze,
    kept_at,
    kept_vs_dropped,
    overlap,
    side_stats,
)
from alpagasus.analysis.figures import plot_overlap, plot_roc, plot_scores
from alpagasus.analysis.markdown import selections_table, to_markdown
from alpagasus.analysis.sweeps import _threshold_label as _threshold_label  # tests read it here
from alpagasus.analysis.sweeps import sweep_section

__all__ = [
    "Features", "SelectionView", "against_reference", "agreement", "analyze", "kept_at",
    "kept_vs_dropped", "overlap", "plot_overlap", "plot_roc", "plot_scores", "selections_table",
    "side_stats", "sweep_section", "to_markdown",
]
