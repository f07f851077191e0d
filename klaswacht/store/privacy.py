"""Pseudonymous ids for pupils and devices (AVG): names live only in the roster table.

An id is HMAC-SHA256 of the pupil number (or device address) under a secret of this install, so the
same pupil gets the same id on every gateway that shares the secret, and nobody without the secret
can go back from an id to a number by trying all numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

PUPIL_PREFIX = "p-"
DEVICE_PREFIX = "d-"
_ID = re.compile(r"[pd]-[0-9a-f]{16}")


def load_secret(path: Path) -> bytes:
    """The install's secret from `path`, created (mode 0600) on first use.

    Written whole under a temporary name and linked into place: several processes starting at once
    (`--workers N`) all read the one complete secret, never an empty file being written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: its secret counts
                os.link(tmp, path)
        finally:
            tmp.unlink()
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"{path}: the secret is too short; remove the file only if no ids need to stay the same")
    return text.encode()


class Pseudonyms:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "Pseudonyms(<secret>)"

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:16]

    def pupil(self, number: str) -> str:
        """The id of the pupil with this pupil number (leerlingnummer)."""
        return PUPIL_PREFIX + self._digest("pupil", number.strip())

    def device(self, address: str) -> str:
        """The id of a device that no roster names (by address or device id)."""
        return DEVICE_PREFIX + self._digest("device", address.strip().lower())

    def resolve(self, pupil: str) -> str:
        """A pseudonymous id as given, or the id of a pupil number."""
        pupil = pupil.strip()
        return pupil if is_id(pupil) else self.pupil(pupil)


def is_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None
