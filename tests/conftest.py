from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from alpagasus.main import CONF_DIR

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A handful of items, a few optimizer steps, short answers: the real pipeline in ~1 minute.
TINY = [
    "data.limit=12",
    "testsets.limit=3",
    "train=smoke",
    "generate.max_new_tokens=8",
    "threshold=1.0",
]


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


@pytest.fixture
def tiny_cfg(compose_cfg, tmp_path) -> Callable[..., DictConfig]:
    def _tiny(*overrides: str) -> DictConfig:
        return compose_cfg(*TINY, f"paths.root={tmp_path}", *overrides)

    return _tiny


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory) -> Path:
    """The TINY pipeline run once, up to the judge: both arms trained, their answers judged.
    Tests that need trained arms set `paths.root` to it (and add their own artifacts)."""
    from alpagasus.main import run

    root = tmp_path_factory.mktemp("trained")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, f"paths.root={root}",
                                                       "stage=judge", "logger.enabled=false"])
    run(cfg)
    return root
