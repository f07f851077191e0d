"""Messages of the lessons pages."""

MESSAGES: dict[str, tuple[str, str]] = {
}
