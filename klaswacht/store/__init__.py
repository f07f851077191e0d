"""The store: events, alerts, grants, bans, roster, staff and audit. Nothing outside this package opens
the database. See README.md in this folder."""

from klaswacht.store.model import Event, Snapshot, Staff, StoreError, StoreUnavailable
from klaswacht.store.store import (
    DATABASE_ENV,
    DB_NAME,
    SCHOOL_ENV,
    Store,
    default_data_dir,
    default_database_url,
    gateway_school,
)

__all__ = ["DATABASE_ENV", "DB_NAME", "SCHOOL_ENV", "Event", "Snapshot", "Staff", "Store", "StoreError",
           "StoreUnavailable", "default_data_dir", "default_database_url", "gateway_school"]
