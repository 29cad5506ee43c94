"""The one error type feedback services raise: a message a user can act on, plus per-item details."""


class ServiceError(Exception):
    """Input was refused; nothing was written.

    `details` lists individual problems (e.g. every bad line of an import) when there are several.
    `code` lets the API pick an HTTP status ("invalid", "not_found", "forbidden", "conflict").
    """

    def __init__(self, message: str, *, details: list[str] | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.code = code

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"- {d}" for d in self.details)
