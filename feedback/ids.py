"""Row ids as the database keeps them: bigint primary keys, from 1 to 2**63 - 1.

Ids that arrive as text (query strings, posted buttons) are read here, so that a number no row
can have is refused or matches nothing; SQLite (the demo's database) raises on integers past
64 bits instead of finding no row."""

MAX_ID = 2**63 - 1


def parse_id(text: str) -> int | None:
    """The id that `text` spells in ASCII digits, or None if it spells none a row can have
    (`str.isdigit` alone takes digits such as "²" that `int` refuses)."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


class IdConverter:
    """The `<id:...>` path converter: a row id in a URL. Digits past any id match no URL (a 404),
    where `<int:...>` passed them to the view to look up."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        if (parsed := parse_id(value)) is None:
            raise ValueError(value)  # Django tries the next pattern, then answers 404
        return parsed

    def to_url(self, value: int) -> str:
        return str(value)
