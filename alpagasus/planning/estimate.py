"""The estimators: pure functions of an architecture, a method and a machine. No I/O.

Stated assumptions (each is a named constant below, so the plan can print it):

* Memory, per device, in bytes. Full fine-tuning keeps fp32 master weights, fp32 gradients
  and AdamW's two fp32 states (16 bytes/parameter), sharded over the devices by FSDP (full
  shard) or partly by ZeRO-2 (gradients and optimizer states; the bf16 module is replicated);
  DDP replicates everything plus its gradient buckets. LoRA: a frozen base in the compute
  dtype (bf16 on a GPU, fp32 on a CPU) plus fp32 adapters, their gradients and AdamW states.
  QLoRA: the linear weights in nf4 (4 bits + quantization constants: 0.127 bits with double
  quantization, 0.5 without), everything else upcast to fp32 (peft's
  prepare_model_for_kbit_training), adapters as LoRA; a paged optimizer only moves spikes to
  the CPU, so it does not change the figure. Activations per micro-batch at ``max_length``
  (an upper bound: the longest possible batch), with gradient checkpointing the stored layer
  inputs plus one layer recomputed; logits and the fp32 loss over the vocabulary; on a GPU the
  CUDA context and the caching allocator's slack, on a CPU the Python runtime.
* Time: ~6·N FLOPs per trained token for full fine-tuning (forward 2N, backward 4N), 4·N for
  LoRA/QLoRA (no weight gradients for the frozen base), +2·N with gradient checkpointing (a
  second forward), plus attention; at ``mfu`` of the machine's peak (QLoRA's dequantization
  costs a further factor). Tokens as the collator makes them: packed (no padding) or padded
  to the longest item of each micro-batch.
* Generation: every prompt decodes ``max_new_tokens`` (an upper bound); a decode step reads
  the weights once from memory, so a batch of B prompts advances B tokens per step.
* API: requests, input tokens (counted), output tokens bounded by ``max_tokens``, priced per
  million tokens (batch API at its discount), wall time at the concurrency and rate limits.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

GIB = 2**30

# --- stated assumptions -------------------------------------------------------------------------
CUDA_CONTEXT_GIB = 0.75  # CUDA context, cuBLAS workspace: outside torch's allocator
ALLOCATOR_SLACK = 0.10  # caching-allocator fragmentation over the peak allocated
CPU_RUNTIME_GIB = 0.65  # Python, torch, transformers, peft, datasets, tokenizer: resident (measured)
NF4_BITS, DOUBLE_QUANT_BITS, SINGLE_QUANT_BITS = 4.0, 0.127, 0.5
INT8_BITS = 8.0  # LLM.int8: one byte a weight (its fp32 row scales are negligible)
ZERO2_BUCKETS_GIB = 1.0  # DeepSpeed's allgather/reduce buckets (5e8 elements, ds_zero2.json)
QLORA_SPEED = 0.6  # nf4 dequantization in every matmul: this fraction of a bf16 LoRA's speed
DECODE_BANDWIDTH_UTIL = 0.6  # of the memory bandwidth a decode step reaches
HF_STEP_OVERHEAD_S = {True: 0.02, False: 0.005}  # per decode step (GPU: kernel launches)
API_LATENCY_S, API_TOKENS_PER_S = 0.5, 50.0  # per request: first token, then output speed
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Arch:
    """A decoder-only transformer of the Llama layout."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    vocab: int
    kv_heads: int | None = None
    tied_embeddings: bool = False
    params: int | None = None  # as published; None: counted from the shape

    @property
    def kv_dim(self) -> int:
        return self.hidden * (self.kv_heads or self.heads) // self.heads

    def module_shapes(self) -> dict[str, tuple[int, int]]:
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def linear_params(self) -> int:
        """The decoder blocks' linear weights (what nf4 quantizes)."""
        return self.layers * sum(a * b for a, b in self.module_shapes().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def total(self) -> int:
        counted = self.linear_params + self.embedding_params + (2 * self.layers + 1) * self.hidden
        return self.params or counted

    @property
    def matmul_params(self) -> int:
        """Weights a token is multiplied by (the LM head, not the embedding lookup)."""
        return self.linear_params + self.vocab * self.hidden


@dataclass(frozen=True)
class Machine:
    name: str
    gpu: str  # the GPU's name, or "cpu"
    devices: int
    memory_gib: float  # per device (CPU: the RAM)
    peak_tflops: float  # per device: dense bf16 (CPU: fp32 FMA peak of all cores)
    mfu: float
    bandwidth_gbs: float
    price_per_gpu_hour: float | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpu != "cpu"


def lora_params(arch: Arch, r: int, targets: tuple[str, ...] | list[str]) -> int:
    """Adapter parameters: r·(in + out) per targeted linear layer of every block."""
    shapes = arch.module_shapes()
    names = LINEAR_MODULES if list(targets) == ["all-linear"] else [t for t in targets if t in shapes]
    return arch.layers * sum(r * sum(shapes[n]) for n in names)


def resolve_strategy(requested: str, method: str, devices: int) -> str:
    """single | ddp | fsdp | zero2: auto is FSDP full shard for full fine-tuning on several
    GPUs (the paper's), DDP for adapters."""
    if devices <= 1:
        return "single"
    if requested == "auto":
        return "fsdp" if method == "full" else "ddp"
    return requested


@dataclass(frozen=True)
class TrainSetup:
    method: str  # full | lora | qlora
    strategy: str  # single | ddp | fsdp | zero2 (resolve_strategy)
    devices: int
    micro_batch: int  # train.per_device_batch_size
    max_length: int
    gradient_checkpointing: bool
    gpu: bool = True  # bf16 compute; False: fp32 on a CPU
    packing: bool = True
    lora_r: int = 8
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    double_quant: bool = True
    quant: str = "nf4"  # the frozen base of a qlora method: nf4 | int8 (quant.mode)
    # Tokens of the longest micro-batch the data can make (plan); None: micro_batch x
    # max_length, the bound a fit check uses before the data is read.
    batch_tokens: int | None = None


def longest_batch(lengths: list[int], micro_batch: int, packing: bool) -> int:
    """The most tokens one micro-batch of these items can hold: packed, the b longest
    together; padded, b rows of the longest."""
    top = sorted(lengths, reverse=True)[:micro_batch]
    return sum(top) if packing else (top[0] * micro_batch if top else 0)


@dataclass
class Memory:
    """Bytes per device by part; ``total_gib`` what the device must hold at the peak."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total_gib(self) -> float:
        return sum(self.parts.values()) / GIB

    def describe(self) -> str:
        return ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items() if v >= GIB / 200)


def _states(arch: Arch, s: TrainSetup, adapters: int) -> dict[str, float]:
    """Weights, gradients, optimizer states and their by-products, per device."""
    n, g = arch.total, s.devices
    if s.method == "full":
        if s.strategy == "zero2":  # bf16 module replicated; fp32 masters + Adam sharded
            return {"weights": 2 * n, "gradients": 2 * n / g, "optimizer": 12 * n / g,
                    "buffers": ZERO2_BUCKETS_GIB * GIB}
        shard = g if s.strategy == "fsdp" else 1
        parts = {"weights": 4 * n / shard, "gradients": 4 * n / shard, "optimizer": 8 * n / shard}
        if s.strategy == "fsdp":  # bf16 units gathered for compute: one layer + prefetch, root
            layer = arch.linear_params / arch.layers
            parts["buffers"] = 2 * (2 * layer + arch.embedding_params)
        elif s.gpu:  # autocast keeps a bf16 copy of every weight for the backward pass
            parts["buffers"] = 2 * n + (4 * n if s.strategy == "ddp" else 0)  # + DDP buckets
        return parts
    if s.method == "qlora":
        bits = (INT8_BITS if s.quant == "int8" else
                NF4_BITS + (DOUBLE_QUANT_BITS if s.double_quant else SINGLE_QUANT_BITS))
        base = arch.linear_params * bits / 8 + (arch.total - arch.linear_params) * 4
        # one weight dequantized to bf16 at a time (and its gradient path)
        buffers = 2 * 2 * arch.hidden * arch.intermediate
    else:
        base = arch.total * (2 if s.gpu else 4) / (g if s.strategy == "fsdp" else 1)
        buffers = 0.0
    parts = {"weights": base + 4 * adapters, "gradients": 4 * adapters,
             "optimizer": 8 * adapters}
    if s.strategy == "ddp":
        buffers += 4 * adapters
    parts["buffers"] = buffers
    return parts


def activation_bytes(arch: Arch, s: TrainSetup) -> tuple[float, float]:
    """(activations, logits and loss) of one micro-batch at max_length."""
    h, kv, i = arch.hidden, arch.kv_dim, arch.intermediate
    tokens = s.batch_tokens if s.batch_tokens is not None else s.micro_batch * s.max_length
    c = 2 if s.gpu else 4  # compute dtype
    # The residual stream is fp32 where the embedding output is (fp32 masters under plain
    # autocast, QLoRA's upcast embeddings, any CPU run); bf16 modules elsewhere.
    fp32_stream = not s.gpu or s.method == "qlora" or (
        s.method == "full" and s.strategy in ("single", "ddp"))
    r = 4 if fp32_stream else 2
    per_token = r * 4 * h + c * (3 * h + 3 * kv + 4 * i)  # norms in/out; q,k,v, rotary, attn; MLP
    if s.gpu and fp32_stream:
        per_token += c * 5 * h  # autocast's bf16 copies of the linear layers' inputs
    if s.method != "full":
        targets = LINEAR_MODULES if list(s.lora_targets) == ["all-linear"] else s.lora_targets
        per_token += c * h * len([t for t in targets if t in LINEAR_MODULES])  # dropout(x)
    # SDPA keeps O(tokens) per layer on both devices (flash kernels; the CPU one takes the
    # packed rows' block mask too, measured): no tokens^2 term.
    if s.gradient_checkpointing:
        acts = tokens * arch.layers * h * r + 2 * tokens * per_token
    else:
        acts = arch.layers * tokens * per_token + 2 * tokens * h * r
    logits = tokens * arch.vocab * (c + 8 + (4 if c != 4 else 0))
    return acts, logits


def train_memory(arch: Arch, s: TrainSetup) -> Memory:
    adapters = 0 if s.method == "full" else lora_params(arch, s.lora_r, s.lora_targets)
    parts = _states(arch, s, adapters)
    parts["activations"], parts["logits"] = activation_bytes(arch, s)
    return _with_overhead(parts, s.gpu)


def _with_overhead(parts: dict[str, float], gpu: bool) -> Memory:
    if gpu:
        parts["allocator"] = ALLOCATOR_SLACK * sum(parts.values())
        parts["cuda_context"] = CUDA_CONTEXT_GIB * GIB
    else:
        parts["runtime"] = CPU_RUNTIME_GIB * GIB
    return Memory(parts)


def inference_memory(arch: Arch, batch: int, context: int, gpu: bool) -> Memory:
    """Generation: bf16 weights, the KV cache of a batch at full context, last-token logits."""
    parts = {"weights": 2.0 * arch.total,
             "kv_cache": 2 * 2 * arch.layers * arch.kv_dim * batch * context,
             "activations": 4 * batch * context * arch.hidden + 4 * batch * arch.vocab}
    return _with_overhead(parts, gpu)


def scoring_memory(arch: Arch, batch_tokens: int, gpu: bool, weight_bytes: float = 2.0) -> Memory:
    """IFD: forward passes only (no gradients) over ``batch_tokens`` padded tokens, weights at
    ``weight_bytes`` each (ifd.dtype)."""
    parts = {"weights": weight_bytes * arch.total,
             "activations": 2 * batch_tokens * (4 * arch.hidden + 2 * arch.intermediate),
             "logits": batch_tokens * arch.vocab * (2 + 4 + 4)}
    return _with_overhead(parts, gpu)


def train_flops(arch: Arch, tokens: float, method: str, gradient_checkpointing: bool,
                mean_length: float = 0.0) -> float:
    per_param = (6 if method == "full" else 4) + (2 if gradient_checkpointing else 0)
    attention = 6 * arch.layers * arch.hidden * mean_length  # QK^T and AV, causal, fwd+bwd
    return tokens * (per_param * arch.matmul_params + attention)


def forward_flops(arch: Arch, tokens: float, mean_length: float = 0.0) -> float:
    """Forward passes only (IFD scoring): 2 FLOPs per matmul parameter per token, plus causal
    attention's QK^T and AV."""
    return tokens * (2 * arch.matmul_params + 2 * arch.layers * arch.hidden * mean_length)


def forward_hours(flops: float, machine: Machine) -> float:
    """Wall hours on one device (stage=ifd runs one process) at the machine's MFU."""
    return flops / (machine.peak_tflops * 1e12 * machine.mfu) / 3600


def train_hours(flops: float, machine: Machine, method: str) -> float:
    """Wall hours on all the machine's devices at its MFU."""
    speed = machine.devices * machine.peak_tflops * 1e12 * machine.mfu
    return flops / (speed * (QLORA_SPEED if method == "qlora" else 1.0)) / 3600


def padded_tokens(lengths: list[int], micro_batch: int, packing: bool, seed: int = 0) -> int:
    """Tokens the model computes on: packed, the real ones; padded, each micro-batch padded
    to its longest item (the Trainer draws batches at random: simulated with ``seed``)."""
    if packing or micro_batch <= 1:
        return sum(lengths)
    order = list(lengths)
    random.Random(seed).shuffle(order)
    return sum(max(order[k:k + micro_batch]) * len(order[k:k + micro_batch])
               for k in range(0, len(order), micro_batch))


def decode_tokens_per_s(arch: Arch, machine: Machine, batch: int) -> float:
    """Tokens per second one device decodes, ``batch`` prompts at a time (HF generate)."""
    weight_bytes = 2.0 * arch.total
    step_s = weight_bytes / (DECODE_BANDWIDTH_UTIL * machine.bandwidth_gbs * 1e9)
    compute_s = batch * 2 * arch.matmul_params / (machine.peak_tflops * 1e12 * machine.mfu)
    return batch / (max(step_s, compute_s) + HF_STEP_OVERHEAD_S[machine.is_gpu])


@dataclass(frozen=True)
class ApiPass:
    requests: int  # to send
    input_tokens: int
    output_tokens: int  # upper bound: max_tokens per request
    usd: float  # at the configured mode's prices (batch: discounted)
    usd_online: float
    usd_batch: float
    wall_s: float  # online, at the concurrency and rate limits
    limited_by: str


def api_pass(requests: int, input_tokens: int, max_tokens: int, price_in: float,
             price_out: float, batch: bool, batch_factor: float, concurrency: int,
             rpm: int | None, tpm: int | None) -> ApiPass:
    """One judge pass over ``requests`` not yet answered (prices per million tokens)."""
    out = requests * max_tokens
    online = (input_tokens * price_in + out * price_out) / 1e6
    per_request = (input_tokens / requests if requests else 0) + max_tokens
    rates = {"concurrency": concurrency / (API_LATENCY_S + max_tokens / API_TOKENS_PER_S)}
    if rpm:
        rates["requests_per_minute"] = rpm / 60
    if tpm and per_request:
        rates["tokens_per_minute"] = tpm / 60 / per_request
    limit = min(rates, key=rates.get)  # type: ignore[arg-type]
    return ApiPass(requests=requests, input_tokens=input_tokens, output_tokens=out,
                   usd=online * (batch_factor if batch else 1.0), usd_online=online,
                   usd_batch=online * batch_factor,
                   wall_s=requests / rates[limit] if requests else 0.0, limited_by=limit)


def chars_tokens(text_chars: int, chars_per_token: float = 4.0) -> int:
    """The stated estimate when no tokenizer is available offline."""
    return math.ceil(text_chars / chars_per_token)
