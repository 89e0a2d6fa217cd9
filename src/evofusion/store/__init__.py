"""Run store: SQLite database, safetensors weights, atomic checkpoints, driver lock."""

from evofusion.store.atomic import atomic_write_bytes, atomic_write_json
from evofusion.store.runstore import SCHEMA_VERSION, RunStore

__all__ = ["SCHEMA_VERSION", "RunStore", "atomic_write_bytes", "atomic_write_json"]
