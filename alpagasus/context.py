"""What every stage gets: the typed config, the artifact store, the tracker, loaded inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from alpagasus.arms import Arm, arms_from_config
from alpagasus.artifacts import Artifact, ArtifactStore
from alpagasus.config import Config
from alpagasus.data import Item, LoadedItems, TestPrompt, fingerprint, load_data, load_testsets
from alpagasus.tracking import Tracker


@dataclass
class RunContext:
    cfg: Config
    store: ArtifactStore
    tracker: Tracker
    # Artifacts already resolved in this job, so upstream stages are visited once.
    done: dict[str, Artifact] = field(default_factory=dict)

    @cached_property
    def arms(self) -> dict[str, Arm]:
        """The two arms compared: "a" (the filter) and "b" (the baseline)."""
        return arms_from_config(self.cfg)

    @cached_property
    def loaded(self) -> LoadedItems:
        """The training items with what the empty-item policy refused, dropped or kept."""
        return load_data(self.cfg.data)

    @property
    def items(self) -> list[Item]:
        return self.loaded.items

    @cached_property
    def data_key(self) -> str:
        return fingerprint([it.to_dict() for it in self.items])[:16]

    @cached_property
    def testsets(self) -> list[TestPrompt]:
        return load_testsets(self.cfg.testsets)

    @cached_property
    def testsets_key(self) -> str:
        return fingerprint([vars(p) for p in self.testsets])[:16]

    @property
    def cache_dir(self) -> Path:
        return Path(self.cfg.paths.cache).expanduser()

    def section(self, name: str) -> dict[str, Any]:
        """A config section as a plain dict (for artifact keys and manifests)."""
        return OmegaConf.to_container(self.cfg[name], resolve=True,  # type: ignore[index]
                                      enum_to_str=True)

    def once(self, name: str, run: Callable[[], Artifact]) -> Artifact:
        """Resolve an upstream stage once per job, however many stages need it."""
        if name not in self.done:
            self.done[name] = run()
        return self.done[name]

    def finish_stage(self, artifact: Artifact, metrics: dict[str, Any] | None = None,
                     name: str | None = None) -> Artifact:
        """Log the stage's counts under ``name`` (default: the stage; per-arm stages pass
        "train/<arm name>" so two arms never write the same W&B keys)."""
        self.tracker.log_stage(name or artifact.stage, metrics or artifact.counts,
                               artifact.reused)
        return artifact
