"""One job's plan: what its pipeline would rate, select, train, generate and judge, what that
costs (requests, dollars, memory, GPU-hours), and what is already done.

Nothing is spent: no API request, no model loaded or downloaded, no W&B run; the judge cache
is read (read-only), artifacts are looked up by the keys the stages themselves compute
(rate.rate_config, select.selection_spec, train_checks.training_spec, generate.answers_config,
judge.judgments_config), so shared work carries the same key in every job. A selection that
is not built yet is counted at its bound (all items that could pass, or the longest N), never
under.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from alpagasus.arms import Arm
from alpagasus.artifacts import artifact_key
from alpagasus.context import RunContext
from alpagasus.data import Item
from alpagasus.judges import judge_identity
from alpagasus.judges.budget import reply_price
from alpagasus.models import default_device
from alpagasus.planning import architecture, counting, passes
from alpagasus.planning.estimate import (
    GIB,
    Machine,
    decode_tokens_per_s,
    forward_flops,
    forward_hours,
    inference_memory,
    longest_batch,
    padded_tokens,
    train_flops,
    train_hours,
)
from alpagasus.planning.fit import (
    ACCELERATE_FILES,
    ifd_step,
    qlora_figure,
    train_setup,
    train_step,
)
from alpagasus.planning.hardware import machine_from
from alpagasus.planning.study import once_by_key, summarize
from alpagasus.prompts import PAIRWISE_PROMPT, alpaca_prompt, rating_messages, rating_prompt
from alpagasus.selection import Strategy, get_strategy
from alpagasus.stages import generate, ifd, judge, rate, select, train_checks

log = logging.getLogger(__name__)

PLAN_VERSION = 1
_RATINGS: dict[tuple[Any, ...], dict[str, Any]] = {}  # memo across a multirun's jobs


@dataclass
class Selection:
    key: str
    items: list[Item]  # exact: the selection; else the items it is bounded by
    count: int  # items trained on (exact, or the bound)
    exact: bool
    bound: str  # how the count was found


def hardware_entry(m: Machine) -> dict[str, Any]:
    return {"name": m.name, "gpu": m.gpu, "gpus": m.devices, "memory_gib": m.memory_gib,
            "peak_tflops": m.peak_tflops, "mfu": m.mfu, "bandwidth_gbs": m.bandwidth_gbs,
            "price_per_gpu_hour": m.price_per_gpu_hour}


class JobPlanner:
    def __init__(self, ctx: RunContext):
        self.ctx, self.cfg = ctx, ctx.cfg
        self.machine = machine_from(self.cfg.hardware)
        self.found = architecture.find(self.cfg.model.name_or_path, ctx.cache_dir,
                                       self.cfg.model.arch)
        self.missing: list[str] = []
        self.notes: list[str] = [f"architecture: {self.found.source}"]
        self.ratings: dict[str, dict[str, Any]] = {}
        self.scorings: dict[str, dict[str, Any]] = {}  # stage=ifd passes, by artifact key
        self.selections: dict[str, Selection] = {}
        self.items: list[Item] | None = self._load("data", lambda: ctx.items)
        self.data_key = ctx.data_key if self.items is not None else "unknown-data"
        # The first position of each distinct item, as the selection sees them.
        self.firsts = select.unique_positions(self.items)[0] if self.items is not None else []
        self.unique = [self.items[i] for i in self.firsts] if self.items is not None else []

    def _load(self, what: str, load: Any) -> Any:
        try:
            return load()
        except Exception as e:  # a plan lists what a run would still need, it does not fail
            hint = getattr(e, "hint", "")
            self.missing.append(f"{what}: {e}" + (f" (fix: {hint})" if hint else ""))
            return None

    # -- ratings -------------------------------------------------------------------------------

    def rating(self, arm: Arm) -> str:
        key = artifact_key(rate.rate_config(arm.judge, rating_prompt(arm.prompt)),
                           {"data": self.data_key})
        if key not in self.ratings:
            self.ratings[key] = self._rating(arm, key)
        entry = self.ratings[key]
        if entry["requests"] and entry.get("api_key_env") and \
                not os.environ.get(entry["api_key_env"]):
            self.missing.append(f"{entry['api_key_env']} (judge {entry['judge']})")
        return key

    def _rating(self, arm: Arm, key: str) -> dict[str, Any]:
        j, cfg = arm.judge, self.cfg
        entry: dict[str, Any] = {"name": f"{j.name}/{arm.prompt}", "judge": j.name,
                                 "model": j.model, "key": key, "items": len(self.items or []),
                                 "unique": len(self.unique), "api_key_env": j.api_key_env}
        built = self.ctx.store.find("rate", key)
        if built is not None or self.items is None:
            c = built.counts if built is not None else {}
            return {**entry, "reused": built is not None, "requests": 0,
                    "cached": c.get("requests", 0), "input_tokens": 0, "output_tokens": 0,
                    "usd": 0.0, "wall_hours": 0.0}
        cache_path = os.path.expanduser(str(cfg.paths.judge_cache))
        mtime = os.path.getmtime(cache_path) if os.path.isfile(cache_path) else 0.0
        # Settings outside the rating key that change the price, the mode or the budget.
        memo = (key, cache_path, mtime, str(cfg.rate.mode), cfg.rate.max_cost_usd,
                str(cfg.rate.budget_scope), j.price_input_per_mtok, j.price_output_per_mtok,
                j.batch_price_factor, j.concurrency, j.requests_per_minute, j.tokens_per_minute)
        if memo not in _RATINGS:
            _RATINGS[memo] = self._count_rating(arm, cache_path)
        return {**entry, **_RATINGS[memo], "reused": False}

    def _count_rating(self, arm: Arm, cache_path: str) -> dict[str, Any]:
        j, cfg = arm.judge, self.cfg
        template = rating_prompt(arm.prompt)
        requests = [rating_messages(template, it) for it in self.unique]
        if str(j.backend) == "local":
            tokens = sum(counting.chars_tokens(sum(len(m["content"]) for m in r))
                         for r in requests)
            return {"requests": len(requests), "cached": 0, "input_tokens": tokens,
                    "output_tokens": len(requests) * j.max_tokens, "usd": 0.0,
                    "wall_hours": None, "token_count": "estimate: chars/4",
                    "note": "local judge: no API cost, it runs on this machine"}
        keys = counting.request_keys(judge_identity(j), requests)
        cached, where = counting.cached_replies(cache_path, keys,
                                                functools.partial(reply_price, j))
        todo = [r for k, r in zip(keys, requests, strict=True) if k not in cached]
        lengths, method = counting.prompt_tokens(j.backend, j.model, todo)
        batch = str(cfg.rate.mode) == "batch"
        api = passes.judge_pass(j, len(todo), sum(lengths), j.max_tokens, batch)
        spent = sum(cached.values()) if str(cfg.rate.budget_scope) == "cache" else 0.0
        cap = cfg.rate.max_cost_usd
        return {"requests": api.requests, "cached": len(cached), "input_tokens": api.input_tokens,
                "output_tokens": api.output_tokens, "usd": round(api.usd, 4),
                "usd_online": round(api.usd_online, 4), "usd_batch": round(api.usd_batch, 4),
                "mode": "batch" if batch else "online",
                "wall_hours": None if batch else round(api.wall_s / 3600, 3),
                "limited_by": api.limited_by, "token_count": method, "cache": where,
                "budget": {"max_cost_usd": cap, "spent_usd": round(spent, 4),
                           "covers": cap is None or spent + api.usd <= cap}}

    # -- selections ----------------------------------------------------------------------------

    def selection(self, arm: Arm) -> Selection:
        if arm.role not in self.selections:
            self.selections[arm.role] = self._selection(arm)
        return self.selections[arm.role]

    def _upstream(self, arm: Arm, strategy: Strategy) -> dict[str, tuple[str, str]]:
        """The strategy's inputs as (stage, key), without building them."""
        if strategy.needs_judge:
            return {"ratings": ("rate", self.rating(arm))}
        if arm.method == "ifd":
            model = arm.model or self.cfg.ifd.model
            identity = ifd.scorer_identity(model, ifd.resolve_dtype(self.cfg.ifd.dtype,
                                                                    default_device()),
                                           self.cfg.ifd.max_length)
            key = artifact_key(identity, {"data": self.data_key})
            if key not in self.scorings:
                self.scorings[key] = self._scoring(model, key)
            return {"ifd": ("ifd", key)}
        return {}

    def _scoring(self, model: str, key: str) -> dict[str, Any]:
        """stage=ifd's forward passes: each distinct item twice (with its instruction, and the
        response alone), batches of ``ifd.batch_tokens``, in one process on one device."""
        c, m = self.cfg.ifd, self.machine
        preset = self.cfg.model.arch if model == self.cfg.model.name_or_path else None
        scorer = architecture.find(model, self.ctx.cache_dir, preset)
        entry: dict[str, Any] = {"name": f"ifd/{model}", "model": model, "key": key,
                                 "items": len(self.unique), "sequences": 2 * len(self.unique),
                                 "reused": self.ctx.store.find("ifd", key) is not None,
                                 "tokens": None, "peak_memory_gib": None, "fits": None,
                                 "gpu_hours": None, "wall_hours": None}
        if not self.unique:
            return entry
        full, method = counting.training_lengths(tuple(self.unique), scorer.tokenizer,
                                                 c.max_length)
        alone = [min(counting.chars_tokens(len(it.output), counting.CHARS_PER_TOKEN) + 1,
                     c.max_length) for it in self.unique]
        tokens = sum(full) + sum(alone)
        entry.update(tokens=tokens, token_count=f"{method}; responses alone: chars/"
                                                f"{counting.CHARS_PER_TOKEN:g}",
                     note="items already in the per-item IFD cache (ifd.cache) cost less")
        if scorer.arch is None:
            self.notes.append(f"IFD scorer {model}: {scorer.source}")
            return entry
        memory = ifd_step(scorer.arch, self.cfg, m.is_gpu).memory  # what the fit check uses
        wall = forward_hours(forward_flops(scorer.arch, tokens, tokens / len(full + alone)), m)
        return {**entry, "peak_memory_gib": round(memory.total_gib, 2),
                "fits": memory.total_gib <= m.memory_gib, "wall_hours": float(f"{wall:.3g}"),
                "gpu_hours": float(f"{wall:.3g}")}

    def _selection(self, arm: Arm) -> Selection:
        strategy = get_strategy(arm.method)
        upstream = self._upstream(arm, strategy)
        size, symbolic = arm.size, None
        if arm.size == "match":
            other = self.selection(self.ctx.arms[arm.other])
            size = other.count if other.exact else None
            symbolic = None if other.exact else f"match:{other.key}"
        config, inputs = select.selection_spec(arm, size, self.data_key,
                                               {k: v for k, (_, v) in upstream.items()})
        if symbolic:
            config["size"] = symbolic
        key = artifact_key(config, inputs)
        built = self.ctx.store.find("select", key)
        if built is not None:
            items = [Item(**d) for d in select.read_selected(built)]
            return Selection(key, items, len(items), True, "selection already built")
        found = {name: self.ctx.store.find(stage, k) for name, (stage, k) in upstream.items()}
        if self.items is not None and symbolic is None and all(found.values()):
            try:
                rows = strategy.scores(found) if found else None
                rows = None if rows is None else [{**rows[i], "index": p}
                                                  for p, i in enumerate(self.firsts)]
                kept = strategy.choose(arm, self.unique, rows, size)
                items = [self.unique[i] for i in sorted(kept)]
                return Selection(key, items, len(items), True, "exact: "
                                 + ("from the ratings already built" if found else arm.method))
            except Exception as e:  # e.g. fewer items pass than size asks: say so
                self.missing.append(f"arm {arm.role} ({arm.name}): {e}")
        count = len(self.unique) if size is None else min(size, len(self.unique))
        bound = (f"upper bound: all {len(self.unique)} distinct items (kept count unknown "
                 "before rating)" if size is None else
                 f"upper bound: the {count} longest items (size {size})")
        if symbolic:
            bound = f"upper bound: all items (size matches arm {arm.other}, not selected yet)"
        return Selection(key, self.unique, count, False, bound)

    # -- training, generation, evaluation ------------------------------------------------------

    def training(self, arm: Arm, sel: Selection) -> dict[str, Any]:
        cfg, tc, m = self.cfg, self.cfg.train, self.machine
        # Exact: the items' own key, as training uses; else unknown before selection, so one
        # training per selection (never fewer than the real run).
        items_key = (select.items_key([it.to_dict() for it in sel.items]) if sel.exact
                     else f"selection:{sel.key}")
        config, inputs = train_checks.training_spec(self.ctx, items_key)
        key = artifact_key(config, inputs)
        if self.items is None:  # no data: nothing to count (listed under missing)
            return {"name": arm.name, "role": arm.role, "method": str(cfg.train.method),
                    "strategy": None, "items": None, "items_exact": False,
                    "items_bound": "data not loaded", "tokens": None, "steps": None, "key": key,
                    "reused": False, "peak_memory_gib": None, "fits": None, "gpu_hours": None,
                    "wall_hours": None}
        lengths, method_text = counting.training_lengths(tuple(sel.items), self.found.tokenizer,
                                                         tc.max_length)
        if not sel.exact:
            lengths = sorted(lengths, reverse=True)[:sel.count]
        per_epoch = math.ceil(len(lengths) / tc.effective_batch_size)
        steps = tc.max_steps if tc.max_steps > 0 else math.ceil(per_epoch * tc.epochs)
        epochs = steps / per_epoch if per_epoch else 0.0
        real = sum(lengths) * epochs
        computed = padded_tokens(lengths, tc.per_device_batch_size, tc.packing, tc.seed) * epochs
        setup = train_setup(cfg, m.devices, m.is_gpu)
        entry: dict[str, Any] = {
            "name": arm.name, "role": arm.role, "method": setup.method,
            "strategy": setup.strategy, "items": sel.count, "items_exact": sel.exact,
            "items_bound": sel.bound, "tokens": int(real), "computed_tokens": int(computed),
            "token_count": method_text, "steps": steps, "epochs": round(epochs, 3), "key": key,
            "reused": self.ctx.store.find("train", key) is not None}
        if setup.strategy in ACCELERATE_FILES:
            entry["launch"] = (f"accelerate launch --config_file alpagasus/conf/accelerate/"
                               f"{ACCELERATE_FILES[setup.strategy]} --num_processes {m.devices} "
                               "-m alpagasus ...")
        arch = self.found.arch
        if arch is None:
            return {**entry, "peak_memory_gib": None, "fits": None, "gpu_hours": None,
                    "wall_hours": None}
        bound = train_step(arch, cfg, m.devices, m.is_gpu).memory  # what the fit check uses
        memory = train_step(arch, cfg, m.devices, m.is_gpu,
                            longest_batch(lengths, tc.per_device_batch_size, tc.packing)).memory
        mean = sum(lengths) / len(lengths) if lengths else 0.0
        flops = train_flops(arch, computed, setup.method, setup.gradient_checkpointing, mean)
        wall = train_hours(flops, m, setup.method)
        entry.update({"peak_memory_gib": round(memory.total_gib, 2),
                      "peak_memory_gib_max_length": round(bound.total_gib, 2),
                      "memory_gib": {k: round(v / GIB, 3) for k, v in memory.parts.items()},
                      "fits": bound.total_gib <= m.memory_gib, "flops": flops,
                      "wall_hours": round(wall, 4), "gpu_hours": round(wall * m.devices, 4)})
        if m.price_per_gpu_hour is not None:
            entry["usd"] = round(entry["gpu_hours"] * m.price_per_gpu_hour, 2)
        if setup.method == "full":
            one = Machine(**{**m.__dict__, "devices": 1})
            q_wall = train_hours(train_flops(arch, computed, "qlora", True, mean), one, "qlora")
            entry["alternative"] = {"what": "train=qlora_paper on 1 GPU",
                                    "peak_memory_gib": round(qlora_figure(arch, cfg, m.is_gpu), 2),
                                    "gpu_hours": round(q_wall, 4)}
        return entry

    def generation(self, arm: Arm, train_key: str, prompts: list[Any] | None) -> dict[str, Any]:
        cfg, m, arch = self.cfg, self.machine, self.found.arch
        key = artifact_key(generate.answers_config(cfg.generate, cfg.generator),
                           {"model": train_key, "testsets": self._testsets_key()})
        n = len(prompts or [])
        entry: dict[str, Any] = {"name": arm.name, "role": arm.role, "prompts": n,
                                 "new_tokens": n * cfg.generate.max_new_tokens, "key": key,
                                 "reused": self.ctx.store.find("generate", key) is not None}
        if arch is None or not n:
            return {**entry, "fits": None, "gpu_hours": None, "wall_hours": None}
        longest = max(counting.chars_tokens(len(alpaca_prompt(p.prompt, p.input)))
                      for p in prompts)
        memory = inference_memory(arch, cfg.generate.batch_size,
                                  longest + cfg.generate.max_new_tokens, m.is_gpu)
        batch = 256 if str(cfg.generator.backend) == "vllm" else cfg.generate.batch_size
        wall = entry["new_tokens"] / decode_tokens_per_s(arch, m, batch) / 3600
        return {**entry, "peak_memory_gib": round(memory.total_gib, 2),
                "fits": memory.total_gib <= m.memory_gib, "wall_hours": round(wall, 4),
                "gpu_hours": round(wall, 4), "tokens_per_s": round(entry["new_tokens"] / wall
                                                                   / 3600, 1)}

    def _testsets_key(self) -> str:
        try:
            return self.ctx.testsets_key
        except Exception:
            return "unknown-testsets"

    def evaluation(self, gen_keys: dict[str, str], prompts: list[Any] | None) -> dict[str, Any]:
        cfg, j = self.cfg, self.cfg.eval_judge
        key = artifact_key(judge.judgments_config(j), {"answers_a": gen_keys["a"],
                                                       "answers_b": gen_keys["b"]})
        n = len(prompts or [])
        entry: dict[str, Any] = {"name": f"{self.ctx.arms['a'].name} vs {self.ctx.arms['b'].name}",
                                 "judge": j.name, "model": j.model, "prompts": n, "key": key}
        if self.ctx.store.find("judge", key) is not None or not n:
            return {**entry, "reused": bool(n), "requests": 0, "cached": 0, "input_tokens": 0,
                    "output_tokens": 0, "usd": 0.0}
        built = [self.ctx.store.find("generate", gen_keys[r]) for r in ("a", "b")]
        if all(built):  # the answers exist: the exact requests, and what the cache holds
            rows = [generate.read_answers(a) for a in built]  # type: ignore[arg-type]
            requests = judge.pair_requests(judge.pair_answers(*[[{**r, "where": "?"} for r in x]
                                                                for x in rows]))
            keys = counting.request_keys(judge_identity(j), requests)
            cached, _ = counting.cached_replies(cfg.paths.judge_cache, keys)
            todo = [r for k, r in zip(keys, requests, strict=True) if k not in cached]
            tokens, _ = counting.prompt_tokens(j.backend, j.model, todo)
            bound = "exact: the answers are generated"
        else:  # each answer at its bound, max_new_tokens
            cached, todo = {}, [None] * (2 * n)
            empty = [PAIRWISE_PROMPT.messages(question=judge.question(vars(p)), answer_1="",
                                              answer_2="") for p in prompts]
            counted, _ = counting.prompt_tokens(j.backend, j.model, empty)
            tokens = [c + 2 * cfg.generate.max_new_tokens for c in counted for _ in (0, 1)]
            bound = f"upper bound: both answers {cfg.generate.max_new_tokens} tokens"
        if str(j.backend) == "local":
            return {**entry, "reused": False, "requests": len(todo), "cached": len(cached),
                    "input_tokens": sum(tokens), "output_tokens": len(todo) * j.max_tokens,
                    "usd": 0.0, "bound": bound, "note": "local judge: no API cost"}
        api = passes.judge_pass(j, len(todo), sum(tokens), j.max_tokens)
        if api.requests and j.api_key_env and not os.environ.get(j.api_key_env):
            self.missing.append(f"{j.api_key_env} (eval judge {j.name})")
        return {**entry, "reused": False, "requests": api.requests, "cached": len(cached),
                "input_tokens": api.input_tokens, "output_tokens": api.output_tokens,
                "usd": round(api.usd, 4), "wall_hours": round(api.wall_s / 3600, 3),
                "bound": bound}

    # -- the whole job -------------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        arms = self.ctx.arms
        order = sorted(arms.values(), key=lambda a: a.size == "match")  # matched arms last
        sels = {a.role: self.selection(a) for a in order}
        trainings = {r: self.training(arms[r], sels[r]) for r in ("a", "b")}
        prompts = self._load("test sets", lambda: self.ctx.testsets)
        gens = {r: self.generation(arms[r], trainings[r]["key"], prompts) for r in ("a", "b")}
        bench = self._load("MT-Bench files", lambda: self.mt_bench(trainings)) or {}
        evaluations = [self.evaluation({r: g["key"] for r, g in gens.items()}, prompts),
                       *bench.get("evaluations", [])]
        self._model_missing([t for t in trainings.values() if not t["reused"]])
        if trainings["a"]["key"] == trainings["b"]["key"]:
            self.notes.append(f"arms {arms['a'].name} and {arms['b'].name} keep the same items: "
                              "one model, whose answers the eval judge compares with themselves")
        plan = {"version": PLAN_VERSION, "hardware": hardware_entry(self.machine),
                "ratings": list(self.ratings.values()),
                "scorings": list(self.scorings.values()),
                "trainings": once_by_key(trainings),
                "generations": once_by_key(gens) + bench.get("generations", []),
                "evaluations": evaluations, "analyses": self.analyses(),
                "missing": sorted(set(self.missing)),
                "notes": self.notes}
        return summarize(plan)

    def analyses(self) -> list[dict[str, Any]]:
        """Optional analyses a study may add, priced but not in the totals (stage=noise)."""
        arm = self.ctx.arms["a"]
        if arm.judge is None or not self.unique:
            return []
        return [passes.noise_analysis(self.cfg, arm, self.unique)]

    def mt_bench(self, trainings: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """With ``benchmark=mt_bench`` the pipeline's report runs MT-Bench: its answers and its
        judge pass are spent work, once per distinct model."""
        kind = str(getattr(self.cfg.benchmark, "kind", None))
        if kind == "open_llm":
            self.notes.append("benchmark=open_llm: the report runs lm-eval on each model; its "
                              "GPU time is not planned (it depends on the tasks)")
        found = passes.mt_bench(self.cfg, trainings, self.machine, self.found.arch)
        j = self.cfg.eval_judge
        if any(e["requests"] for e in found.get("evaluations", [])) and str(j.backend) != "local" \
                and j.api_key_env and not os.environ.get(j.api_key_env):
            self.missing.append(f"{j.api_key_env} (eval judge {j.name})")
        return found

    def _model_missing(self, trainings: list[dict[str, Any]]) -> None:
        name = self.cfg.model.name_or_path
        if not trainings or architecture.weights_cached(name, self.ctx.cache_dir) \
                or name.startswith("embedded:"):
            return
        size = f" (~{self.found.arch.total * 2 / 1e9:.0f} GB)" if self.found.arch else ""
        if architecture.gated(name):
            from huggingface_hub import get_token

            if not get_token():
                self.missing.append(f"hub login for the gated model {name}: accept its licence "
                                    "on the hub, then `huggingface-cli login` (or HF_TOKEN)")
        self.missing.append(f"the weights of {name}{size}: downloaded by the first real run")


def plan_job(ctx: RunContext) -> dict[str, Any]:
    return JobPlanner(ctx).plan()
