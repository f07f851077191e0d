"""Pseudonymous ids for pupils and devices (AVG): names live only in the roster table.

An id is HMAC-SHA256 of the pupil number (or device address) under a secret of this install, so the
same pupil gets the same id on every gateway that shares the secret, and nobody without the secret
can go back from an id to a number by trying all numbers. Pupil numbers and addresses are a school's own
(two schools of a board can both have pupil 1001 and device 10.20.7.11): outside the default school the
school id goes into the HMAC, so their ids differ; the default school's ids are those of before schools.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from filters.policy import DEFAULT_SCHOOL

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

    def _digest(self, kind: str, value: str, school: str) -> str:
        # "pupil@regenboog:1001" can never equal the default school's "pupil:…": a school id has no ':'.
        prefix = kind if school == DEFAULT_SCHOOL else f"{kind}@{school}"
        return hmac.new(self._secret, f"{prefix}:{value}".encode(), hashlib.sha256).hexdigest()[:16]

    def pupil(self, number: str, school: str = DEFAULT_SCHOOL) -> str:
        """The id of the pupil with this pupil number (leerlingnummer) at this school."""
        return PUPIL_PREFIX + self._digest("pupil", number.strip(), school)

    def device(self, address: str, school: str = DEFAULT_SCHOOL) -> str:
        """The id of a device that no roster names (by address or device id) at this school."""
        return DEVICE_PREFIX + self._digest("device", address.strip().lower(), school)

    def resolve(self, pupil: str, school: str = DEFAULT_SCHOOL) -> str:
        """A pseudonymous id as given, or the id of a pupil number at this school."""
        pupil = pupil.strip()
        return pupil if is_id(pupil) else self.pupil(pupil, school)


def is_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None
