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
    # Arm A keeps 9 of the 12 items (the embedded judge rates them 1.0-2.5), arm B all 12: two
    # distinct models. At <= 1.0 arm A keeps all 12 and both arms share one model.
    "threshold=1.5",
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


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the embedded model's tokenizer, saved as an HF folder: a
    real causal LM for scoring code paths (IFD) in milliseconds."""
    import os

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from alpagasus.models import load_tokenizer, resolve_model_path

    tok = load_tokenizer(resolve_model_path(
        "embedded:smollm2", os.environ.get("ALPAGASUS_CACHE", "~/.cache/alpagasus")))
    folder = tmp_path_factory.mktemp("tiny_lm")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=512)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def app_cfg(tmp_path) -> Callable[..., DictConfig]:
    """Like tiny_cfg, but as the `alpagasus` app sees it: HydraConfig holds the job's
    overrides (what stage=analyze composes each `analyze.compare` filter from)."""
    import copy

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="config", return_hydra_config=True,
                          overrides=[*TINY, f"paths.root={tmp_path}", *overrides])
        HydraConfig.instance().set_config(cfg)
        task = copy.deepcopy(cfg)
        with open_dict(task):
            del task["hydra"]
        return task

    yield _compose
    HydraConfig.instance().cfg = None
