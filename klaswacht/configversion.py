"""The version of a configuration: one short id derived from the content of the policy and the local lists.

The same function names a board's bundle (`klaswacht bundle make`, klaswacht/bundle.py) and what a
running proxy loaded (the `klaswacht_config_info{version=...}` gauge), so a gateway that runs a bundle
reports the bundle's version, and a gateway with hand-made lists reports a hash of those: two gateways
report the same version exactly when their policy and local list files are the same bytes. The shipped
lists (wordlists/) are not part of it: they come with klaswacht's own version.

The id is the first 16 hex digits of a sha256 over the sorted lines `name NUL sha256-of-file`, where
the policy is named `policy.toml` and each list file `lists/<path in its folder>`, as a bundle holds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from klaswacht.loading import local_list_files

POLICY_NAME = "policy.toml"
LISTS_DIR = "lists"
VERSION_DIGITS = 16
UNREADABLE = "unreadable"  # in place of a file's hash: a file that cannot be read still changes the id


def version_of(entries: Iterable[tuple[str, str]]) -> str:
    """The id of a configuration given as (name, sha256 hex) of each file."""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(entries))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:VERSION_DIGITS]


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def config_files(policy: Path, folders: Sequence[Path]) -> dict[str, Path]:
    """Name (as in a bundle) -> path of the policy and of every local list file the loader reads."""
    files = {POLICY_NAME: policy}
    files.update({f"{LISTS_DIR}/{rel}": path for rel, path in local_list_files(folders).items()})
    return files


def config_version(policy: Path, folders: Sequence[Path]) -> str:
    """The id of the policy file and the local list folders as they are on disk now."""
    entries = []
    for name, path in config_files(policy, folders).items():
        try:
            digest = file_sha256(path)
        except OSError:
            digest = UNREADABLE
        entries.append((name, digest))
    return version_of(entries)
