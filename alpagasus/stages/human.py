"""Stage `human`: a blind human study of the two arms' answers, and its agreement with the judge.

The paper's own stated limitation is that only an LLM judged the models. This stage serves a
local page (http://127.0.0.1:8765/ by default; `human.host`, `human.port`) where a researcher
reads each test prompt and the two arms' answers, side by side, and says which is better
(keys 1 / 2 / 3 or t; arrows or n / p to move; u for the next unlabelled prompt). Blind: the
page never names an arm; which answer is on the left is drawn per prompt from `human.seed`
and stored with each label. Labels go to SQLite (`human.db`) as they are given, under the
annotator (`human.annotator`) and the study (the judge artifact's key), so the page resumes
where it stopped after a reload or a new run.

Serving ends with the page's Finish button or Ctrl-C; `human.serve=false` only writes the
report from the labels stored so far. The report: human win/tie/lose for arm A and its
winning score, the LLM judge's on the same prompts, and their agreement: Cohen's kappa, raw
agreement and the confusion matrix (prompts whose LLM verdict was unparsed are left out).

Output: human.json, human.md (the artifact's key includes a hash of the labels, so new labels
give a new report and the old one stays).
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.data import fingerprint
from alpagasus.errors import AlpagasusError
from alpagasus.human.server import StudyServer
from alpagasus.human.study import LabelStore, Study, format_summary, summarize
from alpagasus.stages import judge, select
from alpagasus.stages.report import Section, report_section

log = logging.getLogger(__name__)

HUMAN_JSON = "human.json"
HUMAN_MD = "human.md"


def run(ctx: RunContext) -> Artifact:
    return ctx.once("human", lambda: _run(ctx, serve_page=ctx.cfg.human.serve))


def stored(ctx: RunContext) -> Artifact | None:
    """The study from the labels stored so far, without serving: what the `report` stage
    adds (its key changes with the labels). None until a label is stored."""
    hc = ctx.cfg.human
    if not Path(hc.db).is_file():
        return None
    study = make_study(ctx, judge.run(ctx))
    store = LabelStore(hc.db)
    try:
        labelled = bool(store.labels(study.key, hc.annotator))
    finally:
        store.close()
    return ctx.once("human", lambda: _run(ctx, serve_page=False)) if labelled else None


def _run(ctx: RunContext, serve_page: bool) -> Artifact:
    hc = ctx.cfg.human
    judged = judge.run(ctx)  # both arms' answers and the LLM judge's verdicts
    study = make_study(ctx, judged)
    store = LabelStore(hc.db)
    try:
        if serve_page:
            serve(study, store, hc.annotator, hc.host, hc.port)
        labels = store.labels(study.key, hc.annotator)
    finally:
        store.close()

    def build(workdir: Path) -> dict[str, Any]:
        summary = summarize(study, labels)
        summary["annotator"] = hc.annotator
        (workdir / HUMAN_JSON).write_text(json.dumps({**summary, "labels": labels}, indent=2))
        (workdir / HUMAN_MD).write_text(format_summary(summary) + "\n")
        return {"labelled": summary["labelled"], "prompts": summary["prompts"],
                **{f"human_{k}": v for k, v in summary["human"].items()},
                "kappa": summary["agreement"]["kappa"],
                "agreement": summary["agreement"]["agreement"]}

    config = {"annotator": hc.annotator, "seed": hc.seed}
    # What the labels say, not when they were given: relabelling alike changes nothing.
    said = sorted([k, v["left_arm"], v["choice"]] for k, v in labels.items())
    inputs = {"judgments": judged.key, "labels": fingerprint(said)[:16]}
    artifact = ctx.store.ensure("human", config, inputs, build)
    summary = json.loads((artifact.path / HUMAN_JSON).read_text())
    print("\n" + format_summary(summary))
    h = summary["human"]
    ctx.tracker.log_table("human/win_tie_lose", ["judge", "win", "tie", "lose", "n",
                                                 "winning_score"],
                          [["human", h["win"], h["tie"], h["lose"], h["n"], h["winning_score"]]])
    agreement = summary["agreement"]
    ctx.tracker.log_table("human/confusion", ["human \\ LLM", *agreement["labels"]],
                          [[label, *row] for label, row in
                           zip(agreement["labels"], agreement["confusion"], strict=True)])
    return ctx.finish_stage(artifact)


def make_study(ctx: RunContext, judged: Artifact) -> Study:
    kept = {role: select.run(ctx, arm).counts["kept"] for role, arm in ctx.arms.items()}
    title = (f"A = {ctx.arms['a'].label(kept['a'])} vs B = {ctx.arms['b'].label(kept['b'])}; "
             f"LLM judge {ctx.cfg.eval_judge.name}")
    return Study.from_judgments(judge.read_judgments(judged), key=judged.key,
                                seed=ctx.cfg.human.seed, title=title)


def serve(study: Study, store: LabelStore, annotator: str, host: str, port: int) -> None:
    """Serve the page until Finish or Ctrl-C; every label is already stored either way."""
    try:
        server = StudyServer(study, store, annotator, host, port)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        # Another study page (another job, another annotator) already listens there.
        raise AlpagasusError(f"human.port={port}: {host}:{port} is already in use",
                             hint="set human.port to a free port, or human.port=0 for any "
                                  "free one (the page's address is printed)") from e
    done = len(store.labels(study.key, annotator))
    print(f"\nhuman study: {server.url}  ({done} of {len(study.items)} prompts labelled; "
          "Finish on the page or Ctrl-C when done)\n", flush=True)
    try:
        server.serve_until_finished()
    except KeyboardInterrupt:
        log.info("human study: stopped (Ctrl-C); writing the report from the stored labels")


def read_summary(artifact: Artifact) -> dict[str, Any]:
    """human.json: the summary (format_summary renders it) and every label."""
    return json.loads((artifact.path / HUMAN_JSON).read_text())


@report_section("human")
def report_section_human(ctx: RunContext) -> Section | None:
    """Once a researcher has labelled prompts, the report adds the human verdicts and their
    agreement with the LLM judge (the key follows the labels, so new labels rebuild it)."""
    artifact = stored(ctx)
    if artifact is None:
        return None
    return Section(title="Human study (blind)", data=read_summary(artifact),
                   markdown=(artifact.path / HUMAN_MD).read_text(),
                   inputs={"study": artifact.key})
