"""The machine a plan is for: a ``hardware`` preset, or this one detected.

Detection: the CUDA devices (count, the smallest one's memory, its name; peak TFLOPs and
memory bandwidth from the table below, by name), else the CPU (cores this process may use,
their clock and vector width for an fp32 peak, the RAM or the cgroup's memory limit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alpagasus.config import HardwareConfig
from alpagasus.planning.estimate import GIB, Machine

# Dense bf16 TFLOPs and memory bandwidth (GB/s) per GPU, by a name fragment (first match).
KNOWN_GPUS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989, 4800), ("H100 PCIe", 756, 2000), ("H100", 989, 3350),
    ("A100-SXM4-80GB", 312, 2039), ("A100 80GB", 312, 1935), ("A100", 312, 1555),
    ("L40S", 362, 864), ("L40", 181, 864), ("4090", 165, 1008), ("3090", 71, 936),
    ("A10G", 70, 600), ("A10", 125, 600), ("L4", 121, 300), ("V100", 125, 900),
    ("T4", 65, 320),
)
UNKNOWN_GPU = (100.0, 1000.0)  # stated when the name is not in the table
GPU_MFU = 0.3
# CPUs: fp32 FLOPs per cycle per core (two FMA units x vector lanes x 2), measured MFU of a
# small-model training step in fp32 (benchmarks/plan_accuracy.py), memory bandwidth.
CPU_FLOPS_PER_CYCLE = {"avx512f": 64, "avx2": 32, "": 8}
CPU_MFU = 0.1
CPU_BANDWIDTH_GBS = 20.0


def gpu_figures(name: str) -> tuple[float, float, bool]:
    """(bf16 TFLOPs, GB/s, known) for a GPU name."""
    for fragment, tflops, bandwidth in KNOWN_GPUS:
        if fragment.lower() in name.lower():
            return tflops, bandwidth, True
    return *UNKNOWN_GPU, False


def _cpu_info() -> tuple[float, str]:
    """(GHz, widest vector extension) from /proc/cpuinfo; (2.5, "avx2") if unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return 2.5, "avx2"
    mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    flags = next((line.split(":")[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    vector = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else ""
    return (max(mhz) / 1000 if mhz else 2.5), vector


def ram_gib() -> float:
    """The RAM this process may use: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            total = min(total, int(value))
    return total / GIB


def detect_cpu() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ghz, vector = _cpu_info()
    return {"name": f"cpu ({cores} cores, {vector or 'no avx2'})", "gpu": "cpu", "gpus": 1,
            "memory_gib": round(ram_gib(), 1),
            "bf16_tflops": round((cores or 1) * ghz * CPU_FLOPS_PER_CYCLE[vector] / 1000, 3),
            "mfu": CPU_MFU, "memory_bandwidth_gbs": CPU_BANDWIDTH_GBS}


def detect_gpu() -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    props = [torch.cuda.get_device_properties(i) for i in range(count)]
    smallest = min(props, key=lambda p: p.total_memory)
    tflops, bandwidth, _ = gpu_figures(smallest.name)
    return {"name": f"{smallest.name} x{count}", "gpu": smallest.name, "gpus": count,
            "memory_gib": round(smallest.total_memory / GIB, 1), "bf16_tflops": tflops,
            "mfu": GPU_MFU, "memory_bandwidth_gbs": bandwidth}


def machine_from(hw: Any) -> Machine:
    """The ``hardware`` config as a Machine: its fields, and what it leaves null detected
    (a CPU preset detects the CPU, ``auto`` the GPUs first)."""
    fields = ("gpu", "gpus", "memory_gib", "bf16_tflops", "mfu", "memory_bandwidth_gbs")
    given = {k: getattr(hw, k) for k in fields}
    detected: dict[str, Any] = {}
    if any(v is None for v in given.values()):
        detected = (detect_cpu() if given["gpu"] == "cpu" else detect_gpu() or detect_cpu())
        if given["gpu"] not in (None, "cpu", detected.get("gpu")):
            # A named GPU: its figures from the table, not from whatever this machine has.
            tflops, bandwidth, _ = gpu_figures(given["gpu"])
            detected = {**detected, "gpu": given["gpu"], "bf16_tflops": tflops,
                        "memory_bandwidth_gbs": bandwidth, "mfu": GPU_MFU}
    merged = {k: given[k] if given[k] is not None else detected.get(k) for k in fields}
    name = hw.name if hw.name != "auto" else f"auto: {detected.get('name', merged['gpu'])}"
    return Machine(name=name, gpu=merged["gpu"], devices=int(merged["gpus"]),
                   memory_gib=float(merged["memory_gib"]),
                   peak_tflops=float(merged["bf16_tflops"]), mfu=float(merged["mfu"]),
                   bandwidth_gbs=float(merged["memory_bandwidth_gbs"]),
                   price_per_gpu_hour=hw.price_per_gpu_hour)


def this_machine(hw: Any) -> Machine:
    """What a run is on: detected, with only the fields an `auto` config sets on top (a
    preset describes another machine, so a fit check ignores it)."""
    return machine_from(hw if hw.name == "auto" else HardwareConfig())


def describe(machine: Machine) -> str:
    unit = "GPU" if machine.is_gpu else "CPU"
    return (f"{machine.name}: {machine.devices} x {machine.gpu} {machine.memory_gib:g} GiB, "
            f"{machine.peak_tflops:g} TFLOPs peak per {unit} at MFU {machine.mfu:g}")
