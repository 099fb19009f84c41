"""Every option of every config group composes; typos and wrong types fail at compose time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from alpagasus.main import CONF_DIR

# conf/accelerate holds plain accelerate launch files, not a Hydra group.
GROUPS = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "accelerate")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((Path(CONF_DIR) / g).glob("*.yaml"))]
# Options whose required values (???) the user must supply on the command line.
REQUIRED = {
    ("judge", "openai_compatible"): ["judge.base_url=http://127.0.0.1:1/v1", "judge.model=m"],
    ("filter", "openai_compatible"): ["judge.base_url=http://127.0.0.1:1/v1", "judge.model=m"],
    ("data", "json"): ["data.path=/tmp/items.json"],
    ("eval_judge", "openai_compatible"): ["eval_judge.base_url=http://127.0.0.1:1/v1",
                                          "eval_judge.model=m"],
}


def test_groups_present():
    for group in ("model", "judge", "eval_judge", "filter", "lora", "quant", "data", "testsets",
                  "train", "logger", "experiment"):
        assert group in GROUPS


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(compose_cfg, group, option):
    cfg = compose_cfg(f"{group}={option}", *REQUIRED.get((group, option), []))
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert container["stage"] == "pipeline"
    if group not in ("filter", "experiment", "comparison", "debug", "launcher"):  # _global_ groups
        assert cfg[group].name == option


def test_filter_points_at_its_judge(compose_cfg):
    assert compose_cfg("filter=chatgpt").judge.backend == "openai"
    assert compose_cfg("filter=claude").judge.backend == "anthropic"
    assert compose_cfg("filter=local").judge.backend == "local"
    # An explicit judge on the command line wins over the filter's default.
    cfg = compose_cfg("filter=claude", "judge=openai_compatible")
    assert cfg.judge.name == "openai_compatible"


def test_paper_composition(compose_cfg):
    cfg = compose_cfg("model=7b", "filter=claude", "threshold=4.0", "lora=paper", "quant=nf4")
    assert cfg.model.name_or_path == "meta-llama/Llama-2-7b-hf"
    assert cfg.threshold == 4.0 and cfg.quant.mode == "nf4" and cfg.lora.r == 8


def test_misspelt_key_fails_at_compose(compose_cfg):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("model.nme=x")
    assert "Key 'nme' not in 'ModelConfig'" in str(e.value.__cause__)


def test_wrong_type_fails_at_compose(compose_cfg):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("threshold=high")
    assert isinstance(e.value.__cause__, ValidationError)
    assert "threshold" in str(e.value.__cause__)


def test_unknown_option_fails(compose_cfg):
    with pytest.raises(ConfigCompositionException, match="filter"):
        compose_cfg("filter=gpt5")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "alpagasus", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_composed_config(tmp_path):
    out = _cli("--cfg", "job", "model=7b", "filter=claude", "threshold=4.0", "lora=paper",
               "quant=nf4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = OmegaConf.create(out.stdout)
    assert cfg.threshold == 4.0 and cfg.judge.backend == "anthropic" and cfg.quant.mode == "nf4"


def test_cli_rejects_typo_before_any_work(tmp_path):
    out = _cli("model.nme=x", f"paths.root={tmp_path}", cwd=tmp_path)
    assert out.returncode != 0
    assert "Key 'nme' not in 'ModelConfig'" in out.stderr
    assert not (tmp_path / "artifacts").exists()
