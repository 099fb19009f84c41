"""Where training items come from (``data.source``, a registry): ``demo`` (shipped), ``file``
(a JSON list, JSONL or Parquet file), ``hub`` (an HF hub dataset id through
``datasets.load_dataset``, or a local file or folder in the hub's layout); ``load_data``
validates them and applies the empty-item policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpagasus.data.files import DataError, read_records
from alpagasus.data.files import resource_path as _resource_path
from alpagasus.data.items import EmptyPolicy, Item, LoadedItems, validate_item

if TYPE_CHECKING:  # config.py imports EmptyPolicy from alpagasus.data
    from alpagasus.config import DataConfig

log = logging.getLogger(__name__)

DEMO_TRAIN = "demo_train.json"
LISTED = 20  # locations named in one message or log line; the rest are counted

# Each source gives (a name for messages, [(location, record)]).
RawRecords = tuple[str, list[tuple[str, Any]]]


def _demo_records(cfg: DataConfig) -> RawRecords:
    path = _resource_path(DEMO_TRAIN)
    return str(path), read_records(path)


def _file_records(cfg: DataConfig) -> RawRecords:
    path = _configured_path(cfg)
    if path is None:
        raise DataError("data=json needs data.path=/path/to/items.json",
                        hint="give the file: data=json data.path=FILE (a JSON list or JSONL)")
    return str(path), read_records(path)


def _hub_records(cfg: DataConfig) -> RawRecords:
    """An HF hub dataset id, or a local file or folder in the hub's layout (offline use)."""
    name = _configured_path(cfg)
    if name is None:
        raise DataError(f"data={cfg.name} needs data.path=HUB_ID (or a local file or folder)")
    local = Path(name).expanduser()
    if local.is_file():
        return str(local), read_records(local)
    if local.exists() or str(name).startswith(("/", "./", "../", "~")) or \
            local.suffix.lower() in (".json", ".jsonl", ".parquet"):
        return _local_dataset(local, cfg.split)
    return _hub_dataset(str(name), cfg.split)


def _local_dataset(folder: Path, split: str) -> RawRecords:
    if not folder.exists():
        raise DataError(f"{folder}: not found", hint="check data.path (a file, a folder in the "
                        "hub's layout, or a hub id such as tatsu-lab/alpaca)")
    import datasets

    try:  # datasets resolves the hub layout: data/train-*.parquet, *.jsonl, split names
        ds = datasets.load_dataset(str(folder), split=split)
    except Exception as e:  # its errors are many (no data files, unknown split, bad rows)
        raise DataError(f"{folder}: could not load split '{split}' as a dataset folder: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}",
                        hint="point data.path at the data file itself to get a message naming "
                             "the line") from None
    where = f"{folder} ({split})"
    return where, [(f"index {i}", rec) for i, rec in enumerate(ds.to_list())]


def _hub_dataset(hub_id: str, split: str) -> RawRecords:
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # network, auth, missing dataset: say which and how to work around
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"could not load '{hub_id}' ({split}) from the HF hub: {first}",
            hint="offline? download the dataset once (a file or the repo folder) and point "
                 "data.path at it") from None
    where = f"hub {hub_id} ({split})"
    return where, [(f"index {i}", rec) for i, rec in enumerate(ds.to_list())]


def _configured_path(cfg: DataConfig) -> Path | str | None:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, "path"):
        return None
    if not cfg.path:
        return None
    return Path(cfg.path).expanduser() if _value(cfg.source) == "file" else cfg.path


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


SOURCES: dict[str, Callable[[DataConfig], RawRecords]] = {
    "demo": _demo_records,
    "file": _file_records,
    "hub": _hub_records,
}


def load_data(cfg: DataConfig) -> LoadedItems:
    """Load, validate and filter the training items named by the data config.

    Items with an empty (or whitespace-only) instruction or output are refused with their
    locations (``data.empty_policy=refuse``), or left out (``drop``) or kept (``keep``), and
    then logged with their locations and listed in ``LoadedItems.empty``.
    """
    source = _value(cfg.source)
    if source not in SOURCES:
        raise DataError(f"unknown data.source '{source}' ({' | '.join(SOURCES)})")
    name, records = SOURCES[source](cfg)
    fields = dict(getattr(cfg, "fields", None) or {})
    located = [(loc, validate_item(rec, f"{name}: {loc}", fields)) for loc, rec in records]
    empty_fields = [_empty_fields(item) for _, item in located]
    empty = [f"{loc} ({', '.join(which)})" for (loc, _), which in zip(located, empty_fields,
                                                                    strict=True) if which]
    policy = EmptyPolicy(_value(getattr(cfg, "empty_policy", EmptyPolicy.refuse)))
    if empty:
        if policy is EmptyPolicy.refuse:
            raise DataError(
                f"{name}: {len(empty)} item(s) with an empty or whitespace-only instruction or "
                f"output: {_listing(empty)}",
                hint="fix them, or set data.empty_policy=drop to leave them out (or keep, to "
                     "use them as they are); either way they are counted and listed in the log")
        verb = "dropped" if policy is EmptyPolicy.drop else "kept"
        log.warning("data %s: %s %d of %d items with an empty or whitespace-only instruction or "
                    "output (data.empty_policy=%s): %s", name, verb, len(empty), len(located),
                    policy.value, ", ".join(empty))  # every one: the user asked for this
        if policy is EmptyPolicy.drop:
            located = [pair for pair, which in zip(located, empty_fields, strict=True)
                       if not which]
    items = [item for _, item in located]
    if not items:
        raise DataError(f"data '{cfg.name}' ({name}): no items left")
    if cfg.limit:
        items = items[: cfg.limit]
    return LoadedItems(items=items, source=name, empty=empty, policy=policy)


def load_items(cfg: DataConfig) -> list[Item]:
    """The training items named by the data config, validated (see load_data)."""
    return load_data(cfg).items


def _empty_fields(item: Item) -> list[str]:
    return [f for f in ("instruction", "output") if not getattr(item, f).strip()]


def _listing(locations: list[str]) -> str:
    shown = ", ".join(locations[:LISTED])
    more = len(locations) - LISTED
    return shown + (f", and {more} more" if more > 0 else "")
