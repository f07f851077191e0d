"""Messages of the it pages."""

MESSAGES: dict[str, tuple[str, str]] = {
}
