"""Words for counts in what Arbiter tells people."""


def counted(count: int, plural: str) -> str:
    """ "1 prompt", "2 prompts": the things Arbiter counts are all plain plurals ("model versions",
    "outputs"), so the singular drops the last letter."""
    return f"{count} {plural.removesuffix('s') if count == 1 else plural}"


def one_or_many(count: int, one: str, many: str) -> str:
    """The word that agrees with `count`: "is" or "are", "lacks" or "lack"."""
    return one if count == 1 else many


# The order an import makes things in (a JSON column keeps its own order of keys).
KINDS_MADE = ("model_versions", "prompts", "completions", "tasks", "judgments", "pairs")


def what_was_made(counts: dict[str, int]) -> str:
    """What an import made, as counted by kind ({"model_versions": 1, "prompts": 2, ...}):
    "1 model version, 2 prompts"; kinds it made none of are left out."""
    kinds = sorted(
        counts, key=lambda k: KINDS_MADE.index(k) if k in KINDS_MADE else len(KINDS_MADE)
    )
    return ", ".join(counted(counts[k], k.replace("_", " ")) for k in kinds if counts[k])
