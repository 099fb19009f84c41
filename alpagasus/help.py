"""What `alpagasus --help` lists, generated so it cannot drift: the stages from the one stage
list (alpagasus/stages), the experiments from conf/experiment/ (each file's first sentence).

Hydra renders the page from ``hydra.help.template`` (conf/hydra/help/alpagasus.yaml); the two
sections here are OmegaConf resolvers that template calls, and the config groups are Hydra's
own ``$APP_CONFIG_GROUPS``. ``--hydra-help`` keeps Hydra's page.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from alpagasus.stages import STAGES

EXPERIMENT_DIR = Path(__file__).resolve().parent / "conf" / "experiment"
DEFAULT_STAGE = "pipeline"  # conf/config.yaml's `stage:`
WIDTH = 100
SUMMARY_MAX = 120  # a longer first sentence is cut at its first colon


def _rows(rows: list[tuple[str, str]]) -> str:
    """`  name   text`, the text wrapped under itself; `$` doubled for Hydra's string.Template."""
    pad = max(len(name) for name, _ in rows) + 4
    lines = []
    for name, text in rows:
        lines += textwrap.wrap(text, WIDTH, initial_indent=f"  {name}".ljust(pad),
                               subsequent_indent=" " * pad) or [f"  {name}"]
    return "\n".join(lines).replace("$", "$$")


def stages_help() -> str:
    return _rows([(name + (" (default)" if name == DEFAULT_STAGE else ""), spec.doc)
                  for name, spec in STAGES.items()])


def experiment_summary(path: Path) -> str:
    """The first sentence of the comment that opens an experiment file (after `@package`)."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        if not text or text.startswith("alpagasus "):  # a blank line or an example command
            break
        words.append(text)
    comment = " ".join(words)
    sentence = re.split(r"(?<=[.?!])\s", comment, maxsplit=1)[0].rstrip(".")
    if len(sentence) > SUMMARY_MAX and ":" in sentence:
        sentence = sentence.split(":", 1)[0]
    return sentence


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENT_DIR.glob("*.yaml"))


def experiments_help() -> str:
    return _rows([(name, experiment_summary(EXPERIMENT_DIR / f"{name}.yaml"))
                  for name in experiment_names()])


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("alpagasus.help_stages"):
        OmegaConf.register_new_resolver("alpagasus.help_stages", stages_help)
    if not OmegaConf.has_resolver("alpagasus.help_experiments"):
        OmegaConf.register_new_resolver("alpagasus.help_experiments", experiments_help)
