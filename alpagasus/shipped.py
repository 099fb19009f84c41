"""Data shipped inside the package: the paper's four test sets and MT-Bench's files.

They live in ``alpagasus/resources/<name>/`` (with a LICENSES.md naming each file's source
and license) and are found through the package, so an installed wheel uses its own copy.
Configs name the folder as ``${alpagasus.shipped:testsets}``, which resolves to its absolute
path; ``testsets.dir=`` / ``benchmark.path=`` still point anywhere else.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

# Folders under alpagasus/resources that hold shipped data sets.
SHIPPED = ("testsets", "mt_bench")
RESOLVER = "alpagasus.shipped"


def shipped_path(name: str) -> Path:
    """The absolute folder of a shipped data set (``testsets`` or ``mt_bench``)."""
    if name not in SHIPPED:
        raise ValueError(f"${{{RESOLVER}:{name}}}: no shipped data set '{name}' "
                         f"(shipped: {', '.join(SHIPPED)})")
    return Path(str(resources.files("alpagasus") / "resources" / name))


def register_resolver() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, lambda name: str(shipped_path(name)))
