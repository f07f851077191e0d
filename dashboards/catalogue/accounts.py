"""Messages of the accounts pages."""

MESSAGES: dict[str, tuple[str, str]] = {
}
