"""Multi-process training: the accelerate config files, and a real 2-process (gloo) sweep.

`accelerate launch` starts its processes with torch.distributed.run (torchrun) on GPUs; on
CPU it would need mpirun, so the CPU test launches with torchrun directly: the same
WORLD_SIZE/RANK environment, the same code path in alpagasus.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from alpagasus.main import CONF_DIR
from alpagasus.models import load_tokenizer, resolve_model_path

ACCELERATE = Path(CONF_DIR) / "accelerate"
ROOT = Path(__file__).resolve().parents[1]  # the repository root


def _launch_args(config_file: Path):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(config_file), "train.py"])
    known = set(vars(args))
    raw = yaml.safe_load(config_file.read_text())
    for section in ("fsdp_config", "deepspeed_config"):
        unknown = [k for k in raw.get(section, {}) if k not in known]
        assert unknown == [], f"{config_file.name}: accelerate does not know {unknown}"
    args, _, _ = _validate_launch_command(args)
    return args


@pytest.mark.parametrize("name", sorted(p.name for p in ACCELERATE.glob("*.yaml")))
def test_accelerate_config_files_parse(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # DeepSpeed JSON paths are relative to the repository root
    raw = yaml.safe_load((ACCELERATE / name).read_text())
    if raw["distributed_type"] == "DEEPSPEED":
        ds = json.loads((ROOT / raw["deepspeed_config"]["deepspeed_config_file"]).read_text())
        assert ds["zero_optimization"]["stage"] in (2, 3)
        # "auto": the Trainer fills batch/accumulation in, so the effective batch stays ours
        assert ds["gradient_accumulation_steps"] == ds["train_micro_batch_size_per_gpu"] == "auto"
        # bf16 compute from the Trainer's flag, fp32 masters in the ZeRO optimizer: nothing
        # may turn on bf16 master weights/optimizer states; and accelerate rejects a
        # mixed_precision key next to a DeepSpeed JSON.
        assert ds["bf16"]["enabled"] == "auto" and "fp16" not in ds
        assert not any(ds["bf16"].get(k) for k in ("bf16_master_weights_and_grads",
                                                   "bf16_optimizer_states"))
        assert "mixed_precision" not in raw
        return  # the launcher itself imports deepspeed, which is optional
    args = _launch_args(ACCELERATE / name)
    assert args.num_processes == 8
    # bf16 autocast (DDP) or FSDP param_dtype bf16; the trained parameters stay as loaded
    # (fp32 for full fine-tuning: alpagasus.training.precision), never downcast.
    assert args.mixed_precision == "bf16" and raw.get("downcast_bf16", "no") == "no"
    if raw["distributed_type"] == "FSDP":
        assert args.use_fsdp
        assert args.fsdp_sharding_strategy == "FULL_SHARD"
        assert args.fsdp_transformer_layer_cls_to_wrap == "LlamaDecoderLayer"
    else:
        assert args.multi_gpu


def test_two_process_sweep_trains_collectively(tmp_path):
    """torchrun -m alpagasus -m ...: both ranks run each sweep job; one artifact per model."""
    tok = load_tokenizer(resolve_model_path(
        "embedded:smollm2", os.environ.get("ALPAGASUS_CACHE", "~/.cache/alpagasus")))
    model_dir = tmp_path / "tiny"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=256)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "alpagasus", "-m", "size=6,8",
           "stage=train", "train=smoke", "filter=random", "data.limit=12",
           f"model.name_or_path={model_dir}", f"paths.root={tmp_path / 'out'}",
           "logger.mode=disabled", "train.per_device_batch_size=2",
           "train.effective_batch_size=4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    train_dir = tmp_path / "out" / "artifacts" / "train"
    trained = sorted(p.parent for p in train_dir.glob("*/manifest.json"))
    # selected@6, selected@8 and the shared all-data model: each trained once, by 2 ranks
    assert len(trained) == 3
    assert sorted(json.loads((p / "manifest.json").read_text())["counts"]["examples"]
                  for p in trained) == [6, 8, 12]
    for path in trained:
        counts = json.loads((path / "manifest.json").read_text())["counts"]
        assert counts["world_size"] == 2 and counts["steps"] == 3
        # effective batch 4 = 2 per device x 2 ranks, no accumulation: ceil(n/4) steps an epoch
        log = json.loads((path / "train_log.json").read_text())
        assert log[-1]["epoch"] == pytest.approx(3 / math.ceil(counts["examples"] / 4))
        assert (path / "model" / "adapter_model.safetensors").is_file()
    assert not list(train_dir.glob(".partial-*"))
