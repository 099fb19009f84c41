"""How close stage=plan's estimates come to real figures (a table; nothing is asserted).

    python benchmarks/plan_accuracy.py            # paper figures, QLoRA claims, smoke runs here
    python benchmarks/plan_accuracy.py --no-run   # without the two real smoke trainings

Rows:
* The AlpaGasus paper: AlpaGasus-7B (9,229 items, 3 epochs, Alpaca's settings: full
  fine-tuning, FSDP, batch 128, 4 per device, padded to the longest item, max length 512) on
  4 x A100-80GB trained in 14 minutes; Alpaca-52k in 80. The plan is made by stage=plan's own
  planner on the paper's uniform 9k sample of Alpaca (../shared/data); the 52k row scales its
  tokens by 52,002 / 9,229. Bound: within 2x.
* The QLoRA paper: a 65B model fine-tunes on one 48 GB GPU (QLoRA, micro-batch 1, length
  512); a 7B full fine-tune does not fit one 24 GB GPU, a 7B QLoRA (train=qlora_paper) does.
* This machine: the smoke trainings (full and LoRA on the embedded model), each run for real in
  a fresh process. Plan peak memory vs the peak resident set (bound +-30%); plan time vs the
  training's CPU seconds / threads (its time with the cores to itself: this machine is shared)
  and vs wall time (bound 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE_9K = ROOT.parent / "shared" / "data" / "alpaca" / "random_9k.json"
ALPACA_ITEMS = 52002
# LLaMA-65B (huggyllama/llama-65b config.json).
LLAMA_65B = dict(layers=80, hidden=8192, intermediate=22016, heads=64, vocab=32000,
                 params=65_285_660_672)
SMOKE = ["filter=all", "baseline=all", "data.limit=12", "train=smoke", "logger.enabled=false"]
METHODS = {"full": ["lora=none", "quant=none"], "lora": ["lora=paper", "quant=none"]}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from alpagasus.main import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def plan(overrides: list[str], root: str) -> dict:
    """stage=plan's own planner on a composed config (nothing spent)."""
    from alpagasus.artifacts import ArtifactStore
    from alpagasus.context import RunContext
    from alpagasus.planning.job import plan_job
    from alpagasus.tracking import Tracker
    from alpagasus.validation import validate

    cfg = compose([*overrides, f"paths.root={root}"])
    validate(cfg)
    return plan_job(RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts),
                               tracker=Tracker.off()))


def paper_rows(root: str) -> list[list[str]]:
    from alpagasus.planning.estimate import train_hours
    from alpagasus.planning.hardware import machine_from

    cfg_over = ["model=7b", "train=paper_7b", "train.packing=false",
                "train.gradient_checkpointing=false", "filter=all", "baseline=all", "data=json",
                f"data.path={SAMPLE_9K}", "data.empty_policy=keep", "hardware=a100_80gb_x4"]
    p = plan(cfg_over, root)
    t = p["trainings"][0]
    machine = machine_from(compose(["hardware=a100_80gb_x4"]).hardware)
    minutes_9k = t["wall_hours"] * 60
    minutes_52k = train_hours(t["flops"] * ALPACA_ITEMS / t["items"], machine, "full") * 60
    rows = []
    for what, paper, ours in (("AlpaGasus-7B, 9,229 items, 3 epochs, 4xA100-80GB", 14, minutes_9k),
                              ("Alpaca-7B, 52,002 items, 3 epochs, 4xA100-80GB", 80, minutes_52k)):
        ratio = ours / paper
        rows.append([what, f"{paper} min", f"{ours:.1f} min (peak {t['peak_memory_gib']:.1f} "
                     f"GiB/GPU)", f"x{ratio:.2f}", "within 2x", ok(0.5 <= ratio <= 2)])
    rows.append(["(tokens counted)", "", f"{t['tokens']:,} real, {t['computed_tokens']:,} padded "
                 f"({t['token_count']})", "", "", ""])
    return rows


def qlora_rows() -> list[list[str]]:
    from alpagasus.planning.estimate import Arch, TrainSetup, train_memory

    cfg = compose(["model=7b"])
    from alpagasus.planning.architecture import arch_from_node

    llama7 = arch_from_node(cfg.model.arch)
    rows = []
    cases = (
        ("65B QLoRA (micro-batch 1, length 512), one 48 GB GPU", Arch(**LLAMA_65B),
         TrainSetup("qlora", "single", 1, 1, 512, True), 45.0, True),
        ("7B full fine-tuning (train=paper_7b), one 24 GB GPU", llama7,
         TrainSetup("full", "single", 1, 4, 512, True), 24.0, False),
        ("7B QLoRA (train=qlora_paper), one 24 GB GPU", llama7,
         TrainSetup("qlora", "single", 1, 16, 256, True), 24.0, True),
    )
    for what, arch, setup, memory, fits in cases:
        need = train_memory(arch, setup).total_gib
        rows.append([what, "fits" if fits else "does not fit",
                     f"{need:.1f} GiB of {memory:g}: {'fits' if need <= memory else 'does not fit'}",
                     "", "same verdict", ok((need <= memory) == fits)])
    return rows


def measure(method: str, root: str) -> dict:
    """One smoke training in a fresh process: peak RSS, CPU seconds, threads, wall."""
    code = f"""
import json, sys, time, torch
sys.path.insert(0, {str(ROOT)!r})
from transformers import TrainerCallback
from benchmarks.plan_accuracy import compose
from alpagasus.artifacts import ArtifactStore
from alpagasus.context import RunContext
from alpagasus.stages import train
from alpagasus.tracking import Tracker

class Clock(TrainerCallback):
    def on_train_begin(self, *a, **k): self.cpu, self.wall = time.process_time(), time.time()
    def on_train_end(self, *a, **k):
        self.cpu, self.wall = time.process_time() - self.cpu, time.time() - self.wall

cfg = compose({[*SMOKE, *METHODS[method], f"paths.root={root}"]!r})
ctx = RunContext(cfg=cfg, store=ArtifactStore(cfg.paths.artifacts), tracker=Tracker.off())
clock = Clock()
out = train.train(cfg, ctx.items, __import__("pathlib").Path({root!r}), ctx, callbacks=[clock])
print("RESULT " + json.dumps({{"peak_gib": out["peak_memory_gib"], "tokens": out["tokens"],
      "cpu_s": clock.cpu, "wall_s": clock.wall, "threads": torch.get_num_threads()}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"smoke training ({method}) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def smoke_rows(root: str, run: bool) -> list[list[str]]:
    from alpagasus.models import resolve_model_path

    resolve_model_path("embedded:smollm2", os.environ.get("ALPAGASUS_CACHE", "~/.cache/alpagasus"))
    rows = []
    for method, groups in METHODS.items():
        p = plan([*SMOKE, *groups], f"{root}/plan-{method}")["trainings"][0]
        secs = p["wall_hours"] * 3600
        if not run:
            rows.append([f"smoke {method} (embedded model)", "not run", f"{p['peak_memory_gib']:.2f}"
                         f" GiB, {secs:.0f} s", "", "", ""])
            continue
        m = measure(method, f"{root}/run-{method}")
        alone = m["cpu_s"] / m["threads"]
        mem_ratio, time_ratio = p["peak_memory_gib"] / m["peak_gib"], secs / alone
        rows.append([f"smoke {method}: peak memory", f"{m['peak_gib']:.2f} GiB RSS",
                     f"{p['peak_memory_gib']:.2f} GiB", f"x{mem_ratio:.2f}", "+-30%",
                     ok(0.7 <= mem_ratio <= 1.3)])
        rows.append([f"smoke {method}: time ({m['tokens']} tokens; plan {p['tokens']})",
                     f"{alone:.1f} s CPU/{m['threads']} threads ({m['wall_s']:.0f} s wall, "
                     f"load {os.getloadavg()[0]:.1f})", f"{secs:.1f} s", f"x{time_ratio:.2f}",
                     "within 2x", ok(0.5 <= time_ratio <= 2)])
    return rows


def ok(flag: bool) -> str:
    return "ok" if flag else "OUT"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="skip the real smoke trainings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        rows = paper_rows(root) + qlora_rows() + smoke_rows(root, not args.no_run)
    head = ["case", "published / measured", "plan", "ratio", "bound", ""]
    print("| " + " | ".join(head) + " |\n|" + "|".join("---" for _ in head) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
