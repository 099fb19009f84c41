"""Bad values are refused at validation, before any request, model load or W&B run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alpagasus.config import ConfigError, Stage
from alpagasus.stages import STAGES
from alpagasus.validation import validate

API = ["filter=openai_compatible", "judge.model=m", "judge.base_url=http://127.0.0.1:9/v1"]

# (overrides, what the message must say)
REFUSED = [
    (["size=-5"], "size=-5: must be > 0"),
    (["size=0"], "size=0: must be > 0"),
    (["size=1.5"], "whole number"),
    (["size=many"], "whole number"),
    (["threshold=-1"], "outside the judge's 0-5 scale"),
    (["threshold=9"], "outside the judge's 0-5 scale"),
    (["baseline=local", "baseline.threshold=7"], "baseline.threshold=7.0"),
    (["judge.concurrency=0"], "concurrency=0"),
    (["judge.concurrency=-3"], "concurrency=-3"),
    (["judge.price_input_per_mtok=-1"], "price_input_per_mtok=-1.0"),
    (["eval_judge.price_output_per_mtok=-0.5"], "price_output_per_mtok=-0.5"),
    (["judge.max_retries=-1"], "max_retries=-1"),
    (["judge.request_timeout_s=0"], "request_timeout_s=0"),
    ([*API[:2], "judge.base_url=http://127.0.0.1:99999/v1"], "port outside 1-65535"),
    ([*API[:2], "judge.base_url=127.0.0.1:8000/v1"], "not an http(s) URL"),
    ([*API[:2], "judge.base_url=ftp://host/v1"], "not an http(s) URL"),
    ([*API[:2], "judge.base_url=http:///v1"], "not an http(s) URL"),
    (["filter=openai_compatible", "judge.base_url=http://127.0.0.1:9/v1"], "judge.model is required"),
    (["filter=random"], "needs a size"),
    (["filter=random", "size=0"], "size=0"),
    (["filter=random", "size=-1"], "size=-1"),
    (["filter=all", "size=10"], "takes no size"),
    (["baseline=random", "size=match"], "one arm needs a size"),
    (["filter.method=bogus"], "not a selection strategy"),
    (["baseline.method=bogus"], "baseline.method=bogus"),
    (["baseline.method=judge"], "names no judge"),
    (["rate.max_cost_usd=-2"], "rate.max_cost_usd=-2.0"),
    (["generate.max_new_tokens=0"], "generate.max_new_tokens=0"),
    (["data.limit=0"], "data.limit=0"),
]


@pytest.mark.parametrize("overrides,message", REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_bad_values_are_refused_by_validate(compose_cfg, overrides, message):
    cfg = compose_cfg(*overrides)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value)
    assert len(str(e.value).splitlines()) == 1


# Mode strings are enums: a bad value fails when Hydra composes the config.
BAD_MODES = ["quant.mode=nf5", "rate.mode=offline", "judge.backend=gemini", "judge.score_mode=x",
             "export.arm=selected", "filter.unparsed_policy=guess", "data.source=web",
             "select.order=best", "rate.budget_scope=month", "stage=trian", "logger.mode=cloud"]


@pytest.mark.parametrize("override", BAD_MODES)
def test_bad_mode_fails_at_compose(compose_cfg, override):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_cfg(override)


def test_stage_enum_is_the_stage_list():
    assert {s.value for s in Stage} == set(STAGES)


def test_random_size_larger_than_the_data_is_refused_before_anything(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    out = subprocess.run(
        [sys.executable, "-m", "alpagasus", "filter=random", "size=100000", "stage=select",
         f"paths.root={tmp_path}"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120)
    assert out.returncode != 0
    assert "size=100000 is larger than the data (100 items)" in out.stdout + out.stderr
    assert not any(p.name in ("artifacts", "wandb") for p in tmp_path.iterdir())
