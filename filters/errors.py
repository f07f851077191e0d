"""The one error shape of files people edit: the file, the line and the reason, as file:line: reason."""

from __future__ import annotations


class SourceError(ValueError):
    """A line of a list or policy file that cannot be used."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason
