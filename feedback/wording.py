"""Words for counts in what Arbiter tells people."""


def counted(count: int, plural: str) -> str:
    """ "1 prompt", "2 prompts": the things Arbiter counts are all plain plurals ("model versions",
    "outputs"), so the singular drops the last letter."""
    return f"{count} {plural.removesuffix('s') if count == 1 else plural}"
