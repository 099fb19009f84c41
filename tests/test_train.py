"""Training traps: packing, loss masking, fp32 master weights, presets and their method,
QLoRA gradients, resume, preflight, export.

All on a tiny random Llama (2 layers, hidden 32) with the embedded model's tokenizer, so
the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, TrainerCallback

from alpagasus.config import TrainMethod
from alpagasus.data import Item
from alpagasus.main import CONF_DIR, run
from alpagasus.models import load_tokenizer, resolve_model_path
from alpagasus.prompts import alpaca_prompt
from alpagasus.stages import export as export_stage
from alpagasus.stages import train as train_stage
from alpagasus.stages.train import (
    TrainConfigError,
    load_trainable_model,
    make_collator,
    tokenize_item,
    train,
    validate,
)
from alpagasus.training import DeadGradientError, GradientGuard, precision, train_method

ITEMS = [
    Item(instruction="Give three tips for staying healthy.", input="",
         output="Eat well, sleep enough and exercise every day."),
    Item(instruction="Translate to French.", input="Good morning, my friend.",
         output="Bonjour, mon ami."),
    Item(instruction="What is the capital of France?", input="", output="Paris."),
    Item(instruction="Sum the numbers.", input="2, 3 and 4", output="2 + 3 + 4 = 9."),
    Item(instruction="Name a primary colour.", input="", output="Red."),
    Item(instruction="Rewrite the sentence in the past tense.", input="She walks home.",
         output="She walked home."),
    Item(instruction="Classify the sentiment.", input="I love this film!", output="Positive."),
    Item(instruction="Give a synonym of 'quick'.", input="", output="Fast."),
]


def tiny_config(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=256, tie_word_embeddings=False)


@pytest.fixture(scope="module")
def tok():
    cache = Path("~/.cache/alpagasus").expanduser()
    import os

    return load_tokenizer(resolve_model_path("embedded:smollm2",
                                             os.environ.get("ALPAGASUS_CACHE", cache)))


@pytest.fixture(scope="module")
def tiny_dir(tok, tmp_path_factory) -> str:
    """A random tiny Llama saved as an HF folder, with the embedded model's tokenizer."""
    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config(len(tok))).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def fake_ctx(tmp_path: Path):
    return SimpleNamespace(cache_dir=tmp_path / "cache", tracker=SimpleNamespace(enabled=False))


TINY_TRAIN = ["train=smoke", "train.max_steps=4", "train.save_steps=2", "train.logging_steps=1",
              "train.per_device_batch_size=2", "train.effective_batch_size=2",
              "train.learning_rate=1e-2", "logger.mode=disabled"]


# --- prompts and labels ---------------------------------------------------------------------


def test_tokenize_item_masks_the_prompt_and_appends_eos(tok):
    for item in ITEMS[:2]:  # without and with an input
        ex = tokenize_item(tok, item, max_length=512)
        prompt = tok(alpaca_prompt(item.instruction, item.input))["input_ids"]
        n = len(prompt)
        assert ex["input_ids"][:n] == prompt
        assert ex["labels"][:n] == [-100] * n
        assert ex["labels"][n:] == ex["input_ids"][n:]
        assert ex["input_ids"][-1] == tok.eos_token_id
        assert tok.decode(ex["input_ids"][n:-1]).strip() == item.output
        assert ("### Input:" in tok.decode(prompt)) == bool(item.input)
    prompt = tok(alpaca_prompt(ITEMS[0].instruction))["input_ids"]
    long = tokenize_item(tok, ITEMS[0], max_length=len(prompt))
    assert long is None  # no response token fits: dropped rather than trained on nothing
    cut = tokenize_item(tok, ITEMS[0], max_length=40)
    assert len(cut["input_ids"]) == len(cut["labels"]) == 40


# --- padding-free packing -------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_standalone_logits(attn):
    torch.manual_seed(0)
    config = tiny_config(300)
    config._attn_implementation = attn
    model = LlamaForCausalLM(config).eval()
    seqs = [torch.randint(0, 300, (n,)).tolist() for n in (5, 9, 7)]
    batch = make_collator(None, packing=True)([{"input_ids": s, "labels": s} for s in seqs])
    assert batch["input_ids"].shape == (1, 21) and "attention_mask" not in batch
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       use_cache=False).logits[0]
        start = 0
        for s in seqs:
            alone = model(input_ids=torch.tensor([s]), use_cache=False).logits[0]
            diff = (packed[start:start + len(s)] - alone).abs().max().item()
            assert diff <= 1e-4, f"{attn}: packed logits differ by {diff}"
            start += len(s)


def test_packed_loss_equals_padded_loss(tok):
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(len(tok))).eval()
    examples = [tokenize_item(tok, it, 512) for it in ITEMS[:4]]
    packed = make_collator(tok, packing=True)(examples)
    padded = make_collator(tok, packing=False)(examples)
    assert padded["input_ids"].shape[0] == 4 and packed["input_ids"].shape[0] == 1
    with torch.no_grad():
        loss_packed = model(**packed, use_cache=False).loss.item()
        loss_padded = model(**padded, use_cache=False).loss.item()
    assert abs(loss_packed - loss_padded) <= 1e-4


# --- precision: fp32 master weights for full fine-tuning -------------------------------------


def one_adamw_step(model, ids, lr: float) -> tuple[int, int]:
    """(elements that got a non-zero gradient, how many of them the step changed)."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)  # the Trainer's
    model(input_ids=ids, labels=ids).loss.backward()
    got = {n: p.grad != 0 for n, p in model.named_parameters()}
    optimizer.step()
    changed = sum(int(((p.detach() != before[n]) & got[n]).sum())
                  for n, p in model.named_parameters())
    return sum(int(g.sum()) for g in got.values()), changed


def test_a_step_at_lr_1e5_moves_fp32_weights_and_rounds_away_on_bf16_weights():
    """Why full fine-tuning keeps fp32 masters: on bf16 weights most updates vanish."""
    torch.manual_seed(0)
    fp32 = LlamaForCausalLM(tiny_config(300))  # initializer std 0.02, as Llama
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)  # the old path: weights loaded in bf16
    ids = torch.randint(0, 300, (2, 24))
    graded, changed = one_adamw_step(fp32, ids, lr=1e-5)
    assert graded > 20_000 and changed == graded  # every weight that got a gradient moved
    graded, changed = one_adamw_step(bf16, ids, lr=1e-5)
    assert graded > 20_000 and changed < 0.5 * graded  # measured: 16% moved, 84% rounded away


def test_precision_per_method():
    bf16, fp32 = torch.bfloat16, torch.float32
    full = precision(TrainMethod.full, compute=bf16, quant_compute=bf16)
    assert full.weights == fp32 and full.autocast_bf16  # fp32 masters, bf16 compute
    assert precision(TrainMethod.lora, compute=bf16, quant_compute=bf16).weights == bf16
    assert precision(TrainMethod.qlora, compute=bf16, quant_compute=fp32).weights == fp32
    cpu = precision(TrainMethod.full, compute=fp32, quant_compute=bf16)
    assert cpu.weights == fp32 and not cpu.autocast_bf16
    assert train_method(False, "none") == TrainMethod.full
    assert train_method(True, "none") == TrainMethod.lora
    assert train_method(True, "nf4") == TrainMethod.qlora


@pytest.fixture
def bf16_gpu(monkeypatch):
    """Pretend the device computes in bf16 (as an A100/H100 does), on CPU."""
    monkeypatch.setattr(train_stage, "compute_dtype", lambda device: torch.bfloat16)


def test_trainable_model_keeps_fp32_where_it_trains(compose_cfg, tiny_dir, bf16_gpu):
    full = load_trainable_model(compose_cfg("lora=none", f"model.name_or_path={tiny_dir}"),
                                tiny_dir)
    assert {p.dtype for p in full.parameters()} == {torch.float32}
    lora = load_trainable_model(compose_cfg("lora=paper", f"model.name_or_path={tiny_dir}"),
                                tiny_dir)
    trained = {p.dtype for p in lora.parameters() if p.requires_grad}
    frozen = {p.dtype for p in lora.parameters() if not p.requires_grad}
    assert trained == {torch.float32} and frozen == {torch.bfloat16}  # fp32 adapters, bf16 base


def test_full_finetuning_trains_fp32_weights_under_bf16_autocast(compose_cfg, tiny_dir, tmp_path,
                                                                 bf16_gpu, monkeypatch):
    """The real path (load, TrainingArguments, Trainer) at lr 1e-5: the forward computes in
    bf16, yet the weights stay fp32 and every block weight moves."""
    cfg = compose_cfg(*TINY_TRAIN, "train.max_steps=1", "train.learning_rate=1e-5",
                      "lora=none", f"model.name_or_path={tiny_dir}")
    seen: set[torch.dtype] = set()
    real_load = train_stage.load_trainable_model

    def load_and_watch(*args):
        model = real_load(*args)
        model.model.layers[0].self_attn.q_proj.register_forward_hook(
            lambda module, inputs, output: seen.add(output.dtype))
        return model

    monkeypatch.setattr(train_stage, "load_trainable_model", load_and_watch)
    counts = train(cfg, ITEMS, tmp_path, fake_ctx(tmp_path))
    assert seen == {torch.bfloat16}  # autocast was on
    assert counts["method"] == "full" and counts["trainable_dtype"] == "float32"
    before = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert {p.dtype for p in after.parameters()} == {torch.float32}  # saved as trained
    for name, weight in after.state_dict().items():
        if ".layers." in name and name.endswith("proj.weight"):
            moved = (weight != before[name]).float().mean().item()
            assert moved > 0.99, f"{name}: only {moved:.1%} of the weights moved"


# --- presets say what they train --------------------------------------------------------------

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "train").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_a_preset_selects_the_method_it_names(compose_cfg, preset):
    cfg = compose_cfg(f"train={preset}", "model=7b")
    if cfg.train.method is None:  # smoke: any method
        return
    assert train_method(cfg.lora.enabled, cfg.quant.mode) == cfg.train.method
    validate(cfg)


def test_paper_presets_need_no_lora_none(compose_cfg):
    cfg = compose_cfg("model=7b", "train=paper_7b")
    assert not cfg.lora.enabled and cfg.quant.mode == "none"
    cfg = compose_cfg("model=13b", "train=qlora_paper_13b")
    assert cfg.lora.name == "paper" and cfg.quant.mode == "nf4"
    cfg = compose_cfg("experiment=qlora_7b")
    assert cfg.train.name == "qlora_paper" and cfg.quant.mode == "nf4" and cfg.lora.enabled


@pytest.mark.parametrize("overrides,message", [
    (["train=paper_7b", "lora=paper"],
     "train=paper_7b is full fine-tuning but lora=paper quant=none is a LoRA: add lora=none "
     "quant=none, or train.method=lora to train a LoRA at this preset's rate on purpose"),
    (["train=qlora_paper", "quant=none"],
     "train=qlora_paper is a QLoRA but lora=paper quant=none is a LoRA: add lora=paper "
     "quant=nf4, or train.method=lora"),
    (["train=demo", "lora=none"], "train=demo is a LoRA but lora=none quant=none is full "
                                  "fine-tuning"),
])
def test_a_preset_contradicted_by_the_command_line_fails_unless_on_purpose(
        compose_cfg, overrides, message):
    cfg = compose_cfg(*overrides)
    with pytest.raises(TrainConfigError) as e:
        validate(cfg)
    assert str(e.value).startswith(message)
    actual = train_method(cfg.lora.enabled, cfg.quant.mode)
    validate(compose_cfg(*overrides, f"train.method={actual}"))  # said on purpose: fine


# --- QLoRA ----------------------------------------------------------------------------------


def test_qlora_step_gives_every_lora_parameter_a_gradient(compose_cfg, tiny_dir, tok):
    cfg = compose_cfg("quant=nf4", "lora=paper", f"model.name_or_path={tiny_dir}")
    model = load_trainable_model(cfg, tiny_dir)
    assert "Linear4bit" in type(model.base_model.model.model.layers[0].self_attn.q_proj
                                .base_layer).__name__
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    opt = torch.optim.AdamW(lora.values(), lr=1e-2)
    batch = make_collator(tok, packing=True)([tokenize_item(tok, it, 512) for it in ITEMS[:4]])
    model.train()
    for _ in range(2):  # lora_B starts at 0, so lora_A has a gradient from the 2nd step on
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    dead = [n for n, p in lora.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


def test_gradient_guard_catches_a_4bit_model_that_generated_before(tmp_path):
    """The trap itself: bitsandbytes repacks 4-bit weights for CPU inference in generate(),
    after which the LoRA layers on top get no gradient at all."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=256,
                                 num_hidden_layers=1, num_attention_heads=4,
                                 num_key_value_heads=2)).save_pretrained(tmp_path)
    ids = torch.randint(0, 1000, (1, 12))
    guard_args = SimpleNamespace(fsdp=None, deepspeed=None)

    def adapted(generate_first: bool):
        model = AutoModelForCausalLM.from_pretrained(
            tmp_path, dtype=torch.bfloat16, quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16))
        if generate_first:
            model.generate(ids, max_new_tokens=2, do_sample=False)
        model = get_peft_model(prepare_model_for_kbit_training(model), LoraConfig(
            r=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        return model

    GradientGuard().on_pre_optimizer_step(guard_args, None, None, model=adapted(False))
    reused = adapted(True)
    if all(p.grad is not None for p in reused.parameters() if p.requires_grad):
        pytest.skip("this CPU's bitsandbytes does not repack weights in generate()")
    with pytest.raises(DeadGradientError, match="fresh model"):
        GradientGuard().on_pre_optimizer_step(guard_args, None, None, model=reused)


def test_gradient_guard_stops_training_without_gradients():
    model = torch.nn.Linear(2, 2)  # a "trained" model whose backward produced nothing
    args = SimpleNamespace(fsdp=None, deepspeed=None)
    with pytest.raises(DeadGradientError, match="fresh model"):
        GradientGuard().on_pre_optimizer_step(args, None, None, model=model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    GradientGuard().on_pre_optimizer_step(args, None, None, model=model)  # fine


def test_all_linear_lora_with_gradient_checkpointing_trains(compose_cfg, tiny_dir, tmp_path):
    cfg = compose_cfg(*TINY_TRAIN, "train.max_steps=2", f"model.name_or_path={tiny_dir}",
                      "lora=all_linear", "train.gradient_checkpointing=true")
    counts = train(cfg, ITEMS, tmp_path, fake_ctx(tmp_path))  # GradientGuard checked step 1
    assert counts["steps"] == 2 and counts["adapter"]
    adapter = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert {m.rsplit(".", 1)[-1] for m in adapter["target_modules"]} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"}


# --- resume ---------------------------------------------------------------------------------


class Interrupt(Exception):
    pass


class InterruptAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt


def test_resumed_run_ends_at_the_uninterrupted_loss(compose_cfg, tiny_dir, tmp_path):
    cfg = compose_cfg(*TINY_TRAIN, f"model.name_or_path={tiny_dir}", "lora=paper")
    straight = train(cfg, ITEMS, (tmp_path / "a").mkdir() or tmp_path / "a", fake_ctx(tmp_path))
    workdir = tmp_path / "b"
    workdir.mkdir()
    with pytest.raises(Interrupt):
        train(cfg, ITEMS, workdir, fake_ctx(tmp_path), callbacks=[InterruptAfterSave(2)])
    assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["checkpoint-2"]
    resumed = train(cfg, ITEMS, workdir, fake_ctx(tmp_path))
    assert resumed["steps"] == straight["steps"] == 4
    assert abs(resumed["final_loss"] - straight["final_loss"]) <= 1e-5
    # the resumed log carries the first two steps over from the checkpoint
    log = json.loads((workdir / "train_log.json").read_text())
    assert [h["step"] for h in log if "loss" in h] == [1, 2, 3, 4]
    assert all("tokens_per_s" in h and "peak_memory_gib" in h for h in log if "loss" in h)


# --- bad configs fail before any weight is loaded --------------------------------------------


@pytest.mark.parametrize("overrides,reason", [
    (["lora.target_modules=[q_proj,qkv_proj]"], r"not in the model: \['qkv_proj'\]"),
    (["quant=nf4", "lora=none"], "trains adapters only"),
    (["train=paper_7b", "lora=paper"], "train=paper_7b is full fine-tuning but lora=paper"),
    (["train.max_length=4096", "model.context_length=null"], r"exceeds the context .*\(256 tokens\)"),
    (["train.effective_batch_size=6"], "multiple of per_device_batch_size"),
])
def test_bad_config_fails_before_loading_weights(tiny_cfg, tiny_dir, tmp_path, monkeypatch,
                                                  overrides, reason):
    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the config was checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_weights)
    cfg = tiny_cfg("stage=train", f"model.name_or_path={tiny_dir}", "logger.mode=disabled",
                   *overrides)
    with pytest.raises(TrainConfigError, match=reason):
        run(cfg)
    assert not (tmp_path / "artifacts").exists()  # not even rated first


def test_effective_batch_must_split_over_the_launched_devices(tiny_cfg, tiny_dir, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")  # as accelerate launch / torchrun set it
    cfg = tiny_cfg("stage=train", f"model.name_or_path={tiny_dir}", "logger.mode=disabled",
                   "train.per_device_batch_size=2", "train.effective_batch_size=4")
    with pytest.raises(TrainConfigError, match="not a multiple of 2 x 3 devices"):
        run(cfg)
    assert not (tmp_path / "artifacts").exists()


# --- export ---------------------------------------------------------------------------------


def test_export_merges_a_qlora_adapter_into_an_unquantised_base(tiny_cfg, tiny_dir, tmp_path, tok):
    cfg = tiny_cfg("stage=export", f"model.name_or_path={tiny_dir}", "filter=random", "size=6",
                   "quant=nf4", "lora=paper", "export.dtype=float32", *TINY_TRAIN)
    run(cfg)
    (trained,) = (tmp_path / "artifacts" / "train").glob("[!.]*")
    (exported,) = (tmp_path / "artifacts" / "export").glob("[!.]*")
    counts = json.loads((exported / "manifest.json").read_text())["counts"]
    assert counts["merged_adapter"] and counts["dequantised_base"]
    merged = AutoModelForCausalLM.from_pretrained(exported / "model")
    assert getattr(merged.config, "quantization_config", None) is None
    assert type(merged.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert (exported / "model" / "tokenizer.json").is_file()

    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(trained / "model")).eval()
    delta = with_adapter.base_model.model.model.layers[0].self_attn.q_proj.lora_B.default.weight
    assert torch.any(delta != 0)  # the adapter did learn something to merge
    ids = torch.tensor([tokenize_item(tok, ITEMS[0], 512)["input_ids"]])
    with torch.no_grad():
        diff = (merged.eval()(ids).logits - with_adapter(ids).logits).abs().max().item()
    assert diff <= 1e-4
    assert export_stage.export_dtype("auto") == torch.float32  # CPU
