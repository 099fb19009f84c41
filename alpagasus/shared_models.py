"""Which arms of a sweep stand on the same trained model.

Training is keyed by the content of the selected items (alpagasus/stages/train.py), so arms
that keep the same items (two thresholds that keep everything, a filter that keeps all data
and the all-data arm) share one model and one set of answers. The sweep report keeps a row for
every arm and labels each arm's model (M1, M2, ... in order of first use), marking the ones
more than one arm uses; its section lists each model with the arms that use it and the job
that trained it.

Reads only the jobs' result.json dicts (alpagasus/sweep/results.py), imports nothing of ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("a", "b")


@dataclass
class SharedModel:
    label: str  # "M1", "M2", ... in order of first use
    key: str  # the train artifact's key
    items: int | None = None  # items it was trained on
    users: list[tuple[Any, str]] = field(default_factory=list)  # (job number, role)
    built_by: Any = None  # the job that trained it (None: reused from an earlier run)

    @property
    def shared(self) -> bool:
        return len(self.users) > 1


def model_key(result: dict[str, Any], role: str) -> str | None:
    """The key of the model an arm of a job was trained into (None: not trained)."""
    arm = ((result.get("training") or {}).get("arms") or {}).get(role) or {}
    if arm.get("key"):
        return arm["key"]
    artifact = (result.get("artifacts") or {}).get(f"train/{role}") or {}
    return artifact.get("key")


def shared_models(results: list[dict[str, Any]]) -> dict[str, SharedModel]:
    """Every model the sweep's jobs used, by train key, labelled in order of first use."""
    models: dict[str, SharedModel] = {}
    for result in results:
        num = (result.get("job") or {}).get("num")
        training = ((result.get("training") or {}).get("arms")) or {}
        arms = result.get("arms") or {}
        for role in ROLES:
            key = model_key(result, role)
            if key is None:
                continue
            model = models.setdefault(key, SharedModel(f"M{len(models) + 1}", key))
            model.users.append((num, role))
            if model.items is None:
                model.items = (training.get(role) or {}).get("examples") or \
                    (arms.get(role) or {}).get("kept")
            if model.built_by is None and (training.get(role) or {}).get("reused") is False:
                model.built_by = num
    return models


def row_models(result: dict[str, Any], models: dict[str, SharedModel]) -> dict[str, Any]:
    """A report row's model columns: each arm's label and whether another arm uses it too."""
    out: dict[str, Any] = {}
    for role in ROLES:
        model = models.get(model_key(result, role) or "")
        out[f"model_{role}"] = model.label if model else ""
        out[f"model_{role}_shared"] = model.shared if model else False
    return out


def cell(row: dict[str, Any]) -> str:
    """The markdown cell "M2 / M1*": each arm's model, * where another arm uses it too."""
    labels = [row.get(f"model_{r}") or "" for r in ROLES]
    if not any(labels):
        return ""
    return " / ".join(f"{label}*" if row.get(f"model_{r}_shared") else label
                      for r, label in zip(ROLES, labels, strict=True))


def sweep_section(results: list[dict[str, Any]], sweep_dir: Path) -> str:
    """The report's "Trained models" section (a SECTIONS entry of alpagasus/sweep/report.py)."""
    models = shared_models(results)
    if not models:
        return ""
    users = sum(len(m.users) for m in models.values())
    lines = ["## Trained models", "",
             f"{users} arms used {len(models)} distinct models: training is keyed by the "
             "selected items, so arms that keep the same items share one model and one set of "
             "answers (* in the table above).", "",
             "| model | items | used by (job: arm) | trained by job | key |",
             "|---|---:|---|---:|---|"]
    for m in models.values():
        used = ", ".join(f"{num}: {role.upper()}" for num, role in m.users)
        built = "" if m.built_by is None else str(m.built_by)
        items = "" if m.items is None else f"{m.items:,}"
        lines.append(f"| {m.label}{'*' if m.shared else ''} | {items} | {used} | {built} | "
                     f"{m.key[:12]} |")
    return "\n".join(lines)
