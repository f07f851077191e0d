"""Messages of the reports pages."""

MESSAGES: dict[str, tuple[str, str]] = {
}
