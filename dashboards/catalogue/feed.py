"""Messages of the feed pages."""

MESSAGES: dict[str, tuple[str, str]] = {
}
