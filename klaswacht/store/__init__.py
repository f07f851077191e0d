"""The store: events, alerts, grants, bans, roster, staff and audit. Nothing outside this package opens
the database. See README.md in this folder."""

from klaswacht.store.model import Event, Snapshot, Staff, StoreError, StoreUnavailable
from klaswacht.store.store import DB_NAME, Store, default_data_dir

__all__ = ["DB_NAME", "Event", "Snapshot", "Staff", "Store", "StoreError", "StoreUnavailable", "default_data_dir"]
