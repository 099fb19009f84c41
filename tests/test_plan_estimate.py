"""The planning estimators on their own: pure functions of an architecture, a method and a
machine (alpagasus/planning/estimate.py), and the hardware presets' fits and misfits."""

from __future__ import annotations

import sqlite3

import pytest

from alpagasus.planning import counting, fit, study
from alpagasus.planning.architecture import arch_from_config, arch_from_node
from alpagasus.planning.estimate import (
    GIB,
    Arch,
    TrainSetup,
    api_pass,
    longest_batch,
    lora_params,
    padded_tokens,
    resolve_strategy,
    train_flops,
    train_memory,
)
from alpagasus.planning.hardware import gpu_figures, machine_from

LLAMA2_7B = Arch(layers=32, hidden=4096, intermediate=11008, heads=32, vocab=32000)


def setup(method: str, strategy: str = "single", devices: int = 1, **kw) -> TrainSetup:
    base = dict(micro_batch=4, max_length=512, gradient_checkpointing=True)
    return TrainSetup(method, strategy, devices, **{**base, **kw})


def test_llama2_7b_parameters_from_its_shape():
    assert LLAMA2_7B.total == 6_738_415_616  # meta-llama/Llama-2-7b-hf
    smol = Arch(layers=30, hidden=576, intermediate=1536, heads=9, vocab=49152, kv_heads=3,
                tied_embeddings=True)
    assert smol.total == 134_515_008  # SmolLM2-135M


def test_lora_parameters_match_peft():
    # peft on Llama-7B, r=8 on q_proj/v_proj: "trainable params: 4,194,304"
    assert lora_params(LLAMA2_7B, 8, ["q_proj", "v_proj"]) == 4_194_304
    assert lora_params(LLAMA2_7B, 8, ["all-linear"]) > lora_params(LLAMA2_7B, 8, ["q_proj"])


def test_full_fine_tuning_is_16_bytes_per_parameter_sharded_by_strategy():
    n = LLAMA2_7B.total

    def states(s: TrainSetup) -> float:
        m = train_memory(LLAMA2_7B, s).parts
        return m["weights"] + m["gradients"] + m["optimizer"]

    assert states(setup("full")) == pytest.approx(16 * n)
    assert states(setup("full", "fsdp", 4)) == pytest.approx(16 * n / 4)
    assert states(setup("full", "zero2", 4)) == pytest.approx(2 * n + 14 * n / 4)
    ddp = train_memory(LLAMA2_7B, setup("full", "ddp", 4)).total_gib
    assert ddp > train_memory(LLAMA2_7B, setup("full")).total_gib  # replicas + buckets


def test_methods_order_and_their_knobs():
    full = train_memory(LLAMA2_7B, setup("full")).total_gib
    lora = train_memory(LLAMA2_7B, setup("lora")).total_gib
    qlora = train_memory(LLAMA2_7B, setup("qlora")).total_gib
    assert qlora < lora < full
    single_quant = train_memory(LLAMA2_7B, setup("qlora", double_quant=False)).total_gib
    assert single_quant > qlora
    no_ckpt = train_memory(LLAMA2_7B, setup("lora", gradient_checkpointing=False))
    ckpt = train_memory(LLAMA2_7B, setup("lora"))
    assert no_ckpt.parts["activations"] > 5 * ckpt.parts["activations"]
    cpu = train_memory(LLAMA2_7B, setup("lora", gpu=False))  # fp32 base, no CUDA context
    assert cpu.parts["weights"] > 1.9 * ckpt.parts["weights"] and "cuda_context" not in cpu.parts
    shorter = train_memory(LLAMA2_7B, setup("lora", batch_tokens=512))
    assert shorter.parts["activations"] == pytest.approx(ckpt.parts["activations"] / 4)


def test_strategy_default_is_fsdp_for_full_fine_tuning_on_several_gpus():
    assert resolve_strategy("auto", "full", 4) == "fsdp"
    assert resolve_strategy("auto", "lora", 4) == "ddp"
    assert resolve_strategy("zero2", "full", 1) == "single"


def test_flops_per_token():
    n = LLAMA2_7B.matmul_params
    assert train_flops(LLAMA2_7B, 10, "full", False) == 60 * n
    assert train_flops(LLAMA2_7B, 10, "full", True) == 80 * n
    assert train_flops(LLAMA2_7B, 10, "lora", False) == 40 * n
    assert train_flops(LLAMA2_7B, 10, "full", False, mean_length=512) > 60 * n


def test_tokens_as_the_collator_makes_them():
    assert padded_tokens([1, 3, 2, 2], 2, packing=True) == 8
    assert padded_tokens([1, 3], 2, packing=False) == 6
    assert padded_tokens([5] * 4, 2, packing=False) == 20
    assert longest_batch([1, 9, 3, 7], 2, packing=True) == 16
    assert longest_batch([1, 9, 3, 7], 2, packing=False) == 18


def test_api_pass_prices_batch_and_limits():
    p = api_pass(1000, 300_000, 256, 1.0, 5.0, batch=False, batch_factor=0.5, concurrency=1000,
                 rpm=600, tpm=None)
    assert p.output_tokens == 256_000
    assert p.usd == pytest.approx((300_000 * 1.0 + 256_000 * 5.0) / 1e6)
    assert p.usd_batch == pytest.approx(p.usd / 2)
    assert p.limited_by == "requests_per_minute" and p.wall_s == pytest.approx(100.0)
    slow = api_pass(1000, 300_000, 256, 1.0, 5.0, False, 0.5, concurrency=1, rpm=None, tpm=None)
    assert slow.limited_by == "concurrency" and slow.wall_s > p.wall_s
    batch = api_pass(10, 100, 8, 1.0, 1.0, batch=True, batch_factor=0.5, concurrency=4, rpm=None,
                     tpm=None)
    assert batch.usd == pytest.approx(batch.usd_batch)
    assert api_pass(0, 0, 256, 1, 1, False, 0.5, 4, None, None).usd == 0


def test_architecture_from_a_config_json():
    arch = arch_from_config({"num_hidden_layers": 32, "hidden_size": 4096,
                             "intermediate_size": 11008, "num_attention_heads": 32,
                             "vocab_size": 32000})
    assert arch is not None and arch.total == LLAMA2_7B.total
    assert arch_from_config({"hidden_size": 8}) is None


def test_gpu_table():
    assert gpu_figures("NVIDIA H100 80GB HBM3")[:2] == (989, 3350)
    assert gpu_figures("Some Future GPU")[2] is False


@pytest.mark.parametrize(("hardware", "train", "fits"), [
    ("a100_80gb_x4", "paper_7b", True),  # the paper's: FSDP full shard over 4
    ("h100_80gb_x1", "paper_7b", False),  # 16 bytes x 6.7B > 80 GiB
    ("rtx4090_x1", "paper_7b", False),
    ("rtx4090_x1", "qlora_paper", True),
    ("l40s_48gb_x1", "qlora_paper", True),
    ("a100_40gb_x8", "paper_7b", True),
])
def test_presets_fit_and_misfit(compose_cfg, hardware, train, fits):
    cfg = compose_cfg("model=7b", f"train={train}", f"hardware={hardware}")
    machine = machine_from(cfg.hardware)
    need = fit.train_step(arch_from_node(cfg.model.arch), cfg, machine.devices, True)
    assert (need.memory.total_gib <= machine.memory_gib) == fits, need.memory.describe()


def test_13b_needs_more_than_7b(compose_cfg):
    cfg7, cfg13 = compose_cfg("model=7b", "train=paper_7b"), compose_cfg("model=13b",
                                                                         "train=paper_13b")
    m7 = fit.train_step(arch_from_node(cfg7.model.arch), cfg7, 1, True).memory.total_gib
    m13 = fit.train_step(arch_from_node(cfg13.model.arch), cfg13, 1, True).memory.total_gib
    assert m13 > 1.8 * m7
    assert train_memory(LLAMA2_7B, setup("full")).parts["optimizer"] == 8 * LLAMA2_7B.total
    assert GIB == 2**30


def test_fit_check_sizes_the_strategy_accelerate_launched(compose_cfg, monkeypatch):
    """train.strategy=auto runs what `accelerate launch` set up: a 7B full fine-tune fits 4 x
    80 GB sharded by FSDP, not replicated by DDP, and the check must know which it got."""
    cfg = compose_cfg("stage=train", "model=7b", "train=paper_7b", "hardware=a100_80gb_x4")
    monkeypatch.setattr(fit, "this_machine", machine_from)  # as if on the preset's machine
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    fit.check(cfg, "train", trains=True, generates=False)  # fsdp: fits
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    with pytest.raises(fit.WontFitError, match="ddp over 4 devices"):
        fit.check(cfg, "train", trains=True, generates=False)


def test_int8_base_and_float32_scorer_weigh_more(compose_cfg):
    arch = LLAMA2_7B
    nf4 = fit.train_step(arch, compose_cfg("model=7b", "train=qlora_paper"), 1, True).memory
    int8 = fit.train_step(arch, compose_cfg("model=7b", "train=qlora_paper", "quant=int8"), 1,
                          True).memory
    assert int8.parts["weights"] - nf4.parts["weights"] > 2.5 * GIB  # ~6.5e9 linear x 4 bits
    bf16 = fit.ifd_step(arch, compose_cfg("filter=ifd"), True).memory
    fp32 = fit.ifd_step(arch, compose_cfg("filter=ifd", "ifd.dtype=float32"), True).memory
    assert fp32.parts["weights"] == 2 * bf16.parts["weights"]


def test_study_plan_says_when_jobs_plan_for_different_hardware():
    def job(name: str) -> dict:
        return {"version": 1, "hardware": {"name": name, "gpus": 1}, "missing": [], "notes": [],
                **{s: [] for s in study.SECTIONS}}
    assert not study.merge([job("a"), job("a")])["notes"]
    (note,) = study.merge([job("a100_80gb_x4"), job("rtx4090_x1")])["notes"]
    assert "a100_80gb_x4, rtx4090_x1" in note


def test_cached_replies_price_rows_with_no_recorded_cost(tmp_path):
    """The plan's budget counts what the engine's budget counts: older rows without a recorded
    cost at today's prices (batch at its discount), imported replies as free."""
    db = tmp_path / "cache.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE replies (key TEXT, cost_usd REAL, source TEXT, input_tokens INT, "
                "output_tokens INT)")
    con.executemany("INSERT INTO replies VALUES (?, ?, ?, ?, ?)", [
        ("a", 0.5, "online", 10, 10), ("b", None, "online", 10**6, 0),
        ("c", None, "batch", 10**6, 0), ("d", None, "import", 10**6, 0)])
    con.commit()
    con.close()
    found, _ = counting.cached_replies(db, ["a", "b", "c", "d", "e"],
                                       lambda i, o, batch: i / 1e6 * (0.5 if batch else 1.0))
    assert found == {"a": 0.5, "b": 1.0, "c": 0.5, "d": 0.0}
