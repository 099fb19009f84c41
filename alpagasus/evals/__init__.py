"""Benchmarks run on each arm's trained model. One registry, like the selection strategies.

A benchmark is a class registered with ``@register_benchmark``; adding one is one module
(listed in ``BUILTIN`` below, or imported by the user before the run) plus one YAML in
``conf/benchmark/`` whose ``kind`` names it. No stage changes. The `benchmark` stage
(alpagasus/stages/benchmark.py) calls, in this order:

* ``check(spec)``: config checks that need nothing loaded (when the config is validated);
* ``prepare(ctx)``: checks that read files (questions, task names), before any model loads
  or any judge is called; returns what ``evaluate`` needs;
* ``evaluate(ctx, arm, model, prepared)``: one arm's artifact;
* ``headline(artifact, spec)``: the numbers its comparison table shows, ``{metric: value}``;
* ``describe(artifact, spec)``: optionally, a line the report prints under that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from alpagasus.registry import Registry

if TYPE_CHECKING:
    from alpagasus.arms import Arm
    from alpagasus.artifacts import Artifact
    from alpagasus.context import RunContext

# The benchmarks shipped with alpagasus, imported on first lookup: the one place they are listed.
BUILTIN = ("open_llm", "mt_bench")


class BenchmarkError(ValueError):
    """Bad benchmark input (a data file, a task name); the message names file, line, field."""

    exit_code = 1


@dataclass(frozen=True)
class ModelRef:
    """Where an arm's model is: weights (or base weights) and an optional LoRA adapter."""

    path: str
    adapter: str | None
    key: str  # the artifact key of the weights (train or export): enters benchmark keys


class Benchmark:
    """Base class; subclasses set ``name`` and implement ``evaluate`` and ``headline``."""

    name: ClassVar[str]

    def check(self, spec: Any) -> None:
        """Config checks that need no data (raise ConfigError)."""

    def prepare(self, ctx: RunContext) -> Any:
        """Read and check the inputs before any model loads; the result goes to evaluate."""
        return None

    def evaluate(self, ctx: RunContext, arm: Arm, model: ModelRef, prepared: Any) -> Artifact:
        raise NotImplementedError

    def headline(self, artifact: Artifact, spec: Any) -> dict[str, float | None]:
        raise NotImplementedError

    def describe(self, artifact: Artifact, spec: Any) -> str | None:
        """A line the comparison report prints under its table (how the results were made,
        e.g. MT-Bench's decoding), or None."""
        return None


REGISTRY: Registry[Benchmark] = Registry("benchmark", __name__, BUILTIN, "benchmark.kind")
register_benchmark = REGISTRY.register
benchmarks = REGISTRY.all


def get_benchmark(name: str, key: str = "benchmark.kind") -> Benchmark:
    return REGISTRY.get(name, key)
