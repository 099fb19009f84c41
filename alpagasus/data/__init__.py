"""Loading and validating instruction data and test prompts.

Everything is validated before any model is loaded or any W&B run opened: a bad file stops
the run with an error that names the file, the line (JSONL) or index (JSON list), the field,
and how to fix it. Files are read as bytes first, so a compressed, binary, UTF-16 or
non-UTF-8 file gets its own message rather than a decoder's traceback.

Sources (``data.source``, a registry): ``demo`` (shipped), ``file`` (a JSON list, JSONL or
Parquet file), ``hub`` (an HF hub dataset id through ``datasets.load_dataset``, or a local
file or folder in the hub's layout). ``data.fields`` maps our field names to the source's
(Dolly: ``input: context``, ``output: response``).
"""

from alpagasus.data.files import DataError, read_records
from alpagasus.data.items import (
    ITEM_FIELDS,
    EmptyPolicy,
    Item,
    LoadedItems,
    fingerprint,
    load_items_file,
    validate_item,
)
from alpagasus.data.sources import DEMO_TRAIN, SOURCES, RawRecords, load_data, load_items
from alpagasus.data.testsets import DEMO_TEST, TestPrompt, load_testsets

__all__ = [
    "DEMO_TEST", "DEMO_TRAIN", "ITEM_FIELDS", "SOURCES", "DataError", "EmptyPolicy", "Item",
    "LoadedItems", "RawRecords", "TestPrompt", "fingerprint", "load_data", "load_items",
    "load_items_file", "load_testsets", "read_records", "validate_item",
]
