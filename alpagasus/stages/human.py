"""Stage `human`: a blind human study of the two arms' answers by a lab of annotators, and
its agreement with the LLM judge. docs/human-study.md is the user's guide.

The paper's own stated limitation is that only an LLM judged the models. This stage serves
local pages (http://127.0.0.1:8765/ by default; `human.host`, `human.port`): one secret link
per annotator (`human.annotators=[alice,bob]` or a count), where each reads the test prompts
and the two arms' answers side by side and says which is better (keys 1 / 2 / 3 or t; arrows
or n / p to move; u for the next unlabelled prompt), and one for the organiser's progress
page. Blind: the page never names an arm; which answer is on the left is drawn per prompt
from `human.seed` and stored with each label. Labels go to SQLite (`human.db`) as they are
given, under the annotator and the study (the judge artifact's key), so a reopened link
resumes where it stopped. The links are printed once and kept in `human.links` (mode 0600).

Serving ends when every annotator has pressed Finish, with the organiser's Stop, or Ctrl-C;
`human.serve=false` only writes the report from the labels stored so far (and prints every
annotator's progress). The report (alpagasus/human/summary.py): per test set and over all,
Krippendorff's alpha and Fleiss' kappa between annotators, the majority vote against the
LLM judge (agreement, Cohen's kappa, confusion matrix), win/tie/lose per annotator.

Output: human.json, human.md, human_labels.csv (every label), human_agreement.png; in the
artifact (its key includes a hash of the labels, so new labels give a new report and the
old one stays) and copied into the Hydra run folder.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any

from alpagasus.artifacts import Artifact
from alpagasus.config import HumanConfig
from alpagasus.context import RunContext
from alpagasus.data import fingerprint
from alpagasus.errors import AlpagasusError
from alpagasus.human.access import load_links
from alpagasus.human.server import StudyServer
from alpagasus.human.study import LabelStore, Study, StudyItem
from alpagasus.human.summary import ALL, format_summary, plot, summarize, write_csv
from alpagasus.stages import judge, select
from alpagasus.stages.report import Section, report_section
from alpagasus.sweep import copy_to_run_dir

log = logging.getLogger(__name__)

HUMAN_JSON = "human.json"
HUMAN_MD = "human.md"
HUMAN_CSV = "human_labels.csv"
HUMAN_PNG = "human_agreement.png"
OUTPUTS = (HUMAN_JSON, HUMAN_MD, HUMAN_CSV, HUMAN_PNG)


def run(ctx: RunContext) -> Artifact:
    return ctx.once("human", lambda: _run(ctx, serve_page=ctx.cfg.human.serve))


def annotators(ctx: RunContext) -> list[str]:
    return HumanConfig.annotator_names(ctx.cfg.human.annotators)


def stored(ctx: RunContext) -> Artifact | None:
    """The study from the labels stored so far, without serving: what the `report` stage
    adds (its key changes with the labels). None until an annotator has labelled."""
    hc = ctx.cfg.human
    if not Path(hc.db).is_file():
        return None
    store = LabelStore(hc.db)
    try:
        labels = store.all_labels(judge.run(ctx).key)  # a study's key is its judgments' key
    finally:
        store.close()
    if not any(labels.get(name) for name in annotators(ctx)):
        return None
    return ctx.once("human", lambda: _run(ctx, serve_page=False))


def _run(ctx: RunContext, serve_page: bool) -> Artifact:
    hc = ctx.cfg.human
    judged = judge.run(ctx)  # both arms' answers and the LLM judge's verdicts
    study = make_study(ctx, judged)
    names = annotators(ctx)
    assigned = study.assign(names, hc.overlap, hc.seed)
    store = LabelStore(hc.db)
    try:
        if serve_page:
            serve(study, store, assigned, hc)
        labels = {name: mine for name, mine in store.all_labels(study.key).items()
                  if name in assigned}
        finished = store.finished(study.key) & set(names)
    finally:
        store.close()

    def build(workdir: Path) -> dict[str, Any]:
        summary = summarize(study, assigned, labels, finished)
        (workdir / HUMAN_JSON).write_text(json.dumps({**summary, "labels": labels}, indent=2))
        (workdir / HUMAN_MD).write_text(format_summary(summary) + "\n")
        write_csv(workdir / HUMAN_CSV, study, labels)
        plot(workdir / HUMAN_PNG, summary)
        g = summary["groups"][ALL]
        return {"labelled": g["labelled"], "prompts": summary["prompts"],
                "annotators": len(names), "labels": sum(len(m) for m in labels.values()),
                "krippendorff_alpha": g["krippendorff_alpha"], "fleiss_kappa": g["fleiss_kappa"],
                **{f"majority_{k}": v for k, v in g["majority"].items()},
                "kappa_vs_llm": g["vs_llm"]["kappa"], "agreement_vs_llm": g["vs_llm"]["agreement"]}

    # Names only: the links' tokens never enter a config, a key or a manifest.
    config = {"annotators": names, "overlap": hc.overlap, "seed": hc.seed}
    # What the labels say, not when they were given: relabelling alike changes nothing.
    said = sorted([a, k, v["left_arm"], v["choice"]] for a, mine in labels.items()
                  for k, v in mine.items())
    inputs = {"judgments": judged.key, "labels": fingerprint(said)[:16],
              "finished": fingerprint(sorted(finished))[:16]}
    artifact = ctx.store.ensure("human", config, inputs, build)
    summary = read_summary(artifact)
    print("\n" + format_summary(summary))
    copied = copy_to_run_dir(artifact.path, OUTPUTS)
    print(f"\nhuman study: {', '.join(OUTPUTS)} in {copied or artifact.path}", flush=True)
    _log_tables(ctx, summary)
    return ctx.finish_stage(artifact)


def _log_tables(ctx: RunContext, summary: dict[str, Any]) -> None:
    rows = [[name, t["win"], t["tie"], t["lose"], t["n"], t["winning_score"]]
            for name, t in [*summary["per_annotator"].items(),
                            ("majority", summary["groups"][ALL]["majority"])]]
    ctx.tracker.log_table("human/win_tie_lose", ["judge", "win", "tie", "lose", "n",
                                                 "winning_score"], rows)
    ctx.tracker.log_table(
        "human/agreement", ["test set", "krippendorff_alpha", "fleiss_kappa",
                            "agreement_vs_llm", "kappa_vs_llm"],
        [[name, g["krippendorff_alpha"], g["fleiss_kappa"], g["vs_llm"]["agreement"],
          g["vs_llm"]["kappa"]] for name, g in summary["groups"].items()])


def make_study(ctx: RunContext, judged: Artifact) -> Study:
    kept = {role: select.run(ctx, arm).counts["kept"] for role, arm in ctx.arms.items()}
    title = (f"A = {ctx.arms['a'].label(kept['a'])} vs B = {ctx.arms['b'].label(kept['b'])}; "
             f"LLM judge {ctx.cfg.eval_judge.name}")
    return Study.from_judgments(judge.read_judgments(judged), key=judged.key,
                                seed=ctx.cfg.human.seed, title=title)


def serve(study: Study, store: LabelStore, assigned: dict[str, list[StudyItem]],
          hc: Any) -> None:
    """Serve the pages until every annotator's Finish, the organiser's Stop or Ctrl-C; every
    label is already stored either way."""
    links = load_links(hc.links, list(assigned))
    try:
        server = StudyServer(study, store, assigned, links, hc.host, hc.port, list(hc.hosts))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        # Another study page (another job, another study) already listens there.
        raise AlpagasusError(f"human.port={hc.port}: {hc.host}:{hc.port} is already in use",
                             hint="set human.port to a free port, or human.port=0 for any "
                                  "free one (the links are printed)") from e
    labels = store.all_labels(study.key)
    # The only place the tokens are shown: printed to this terminal, never logged.
    lines = [f"\nhuman study: {len(study.items)} prompts, {len(assigned)} annotator(s). "
             "Send each annotator their own link:"]
    width = max(len(name) for name in assigned)
    for name, items in assigned.items():
        done = sum(it.key in labels.get(name, {}) for it in items)
        lines.append(f"  {name:<{width}}  {server.annotator_url(name)}  "
                     f"({done} of {len(items)} labelled)")
    lines += [f"  progress (organiser): {server.organiser_url}",
              f"The links are kept in {hc.links} (mode 0600; delete it for new ones). Serving "
              "until every annotator presses Finish, Stop on the progress page, or Ctrl-C.\n"]
    print("\n".join(lines), flush=True)
    log.info("human study: serving %d annotator(s) on port %d", len(assigned), server.port)
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
