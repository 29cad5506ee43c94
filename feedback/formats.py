"""Preference-data formats: reading JSONL records of TRL, Anthropic HH and Chatbot Arena into plain
records, and rendering prompts and completions back into those formats. No ORM here.

How each format maps onto Arbiter's model (and back, exactly):
- TRL standard (`prompt`/`chosen`/`rejected` strings): a text prompt and two completions.
- TRL conversational (message lists): a chat prompt and two completions, each one assistant message.
  Without `prompt` ("implicit prompt"), the prompt is the messages `chosen` and `rejected` share.
- Anthropic HH (`chosen`/`rejected` full transcripts "\\n\\nHuman: ...\\n\\nAssistant: ..."): the turns
  both transcripts share, up to the last assistant turn, become a chat prompt; the rest of each
  transcript, from that assistant turn on, is the completion text. Rendering the prompt back and
  appending "\\n\\nAssistant: " + completion gives the original transcript byte for byte, so the few
  HH lines whose transcripts diverge before their last turn round-trip too.
- Chatbot Arena battles (`model_a`, `model_b`, `winner`, and `conversation_a`/`conversation_b` or
  `prompt`/`response_a`/`response_b`): a prompt, one completion per model, and who won. In a
  multi-turn battle the prompt is what both models were asked before their answers part; each
  completion is the rest of its conversation, later turns written "\n\nUser: ..." and
  "\n\nAssistant: ...", since the verdict is on all of it.
  The Kaggle and lmsys-arena-human-preference-55k shape (`winner_model_a`, `winner_model_b`,
  `winner_tie` flags; `prompt`, `response_a` and `response_b` JSON-encoded lists of turns, null
  where a model gave no answer) reads the same way: one turn is a text prompt and two answers,
  more are the conversations they interleave into.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from django.conf import settings

from feedback.errors import ServiceError
from feedback.services.projects import prompt_fields

Messages = list[dict[str, str]]

HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
HH_SPEAKERS = {"user": "Human", "assistant": "Assistant", "system": "System", "tool": "Tool"}
ARENA_WINNERS = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "both_bad"}
ARENA_LABELS = {choice: label for label, choice in ARENA_WINNERS.items()}
# Half of a character outside the BMP, without its other half (see encoded_turns).
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Kaggle's arena data flags the winner instead (no "both bad"): flag -> `winner`.
KAGGLE_WINNER_FLAGS = {
    "winner_model_a": "model_a",
    "winner_model_b": "model_b",
    "winner_tie": "tie",
}
PROMPT_SPLITS = ("train", "held_out")
MAX_TOKEN_COUNT = 2**31 - 1  # the column's range


class LineError(ValueError):
    """One line of an import is unusable; the message says why."""


@dataclass(slots=True)
class PromptRecord:
    text: str
    messages: Messages | None
    content_hash: str
    metadata: dict = field(default_factory=dict)
    split: str = "train"


@dataclass(slots=True)
class CompletionRecord:
    prompt: PromptRecord
    text: str
    model: str | None = None
    generation_settings: dict = field(default_factory=dict)
    token_count: int | None = None


@dataclass(slots=True)
class ModelVersionRecord:
    name: str
    base_model: str = ""
    method: str = "imported"
    adapter_path: str = ""
    hyperparameters: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


@dataclass(slots=True)
class PairRecord:
    """A pairwise comparison: `choice` says which of a/b won ("a", "b", "tie", "both_bad")."""

    prompt: PromptRecord
    a_text: str
    b_text: str
    choice: str = "a"
    margin: float | None = None
    model_a: str | None = None
    model_b: str | None = None


# --- reading ---------------------------------------------------------------------------------


def read_prompt(value: object, *, metadata: object = None, split: object = "train") -> PromptRecord:
    if isinstance(value, str):
        text, messages = value, None
    elif isinstance(value, list):
        text, messages = "", value
    else:
        raise LineError("'prompt' must be a string or a list of chat messages.")
    try:
        fields = prompt_fields(text, messages)
    except ServiceError as error:
        raise LineError(error.message) from None
    if metadata is not None and not isinstance(metadata, dict):
        raise LineError("'metadata' must be an object.")
    if split not in PROMPT_SPLITS:
        raise LineError(f"'split' must be one of {', '.join(PROMPT_SPLITS)}.")
    return PromptRecord(
        fields["text"], fields["messages"], fields["content_hash"], metadata or {}, split
    )


def require_keys(record: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in record]
    if missing:
        raise LineError(f"missing {', '.join(repr(k) for k in missing)}.")


def require_text(record: dict, key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise LineError(f"{key!r} must be a string.")
    return value


def read_margin(record: dict) -> float | None:
    margin = record.get("margin")
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin):
        raise LineError("'margin' must be a number.")
    if margin < 0:
        raise LineError("'margin' must be >= 0 (it says by how much 'chosen' is better).")
    return float(margin)


def read_prompt_line(record: dict) -> PromptRecord:
    require_keys(record, "prompt")
    return read_prompt(
        record["prompt"], metadata=record.get("metadata"), split=record.get("split", "train")
    )


def read_completion_line(record: dict) -> CompletionRecord:
    require_keys(record, "prompt", "completion")
    prompt_value = record["prompt"]
    settings = record.get("generation_settings") or {}
    # The outputs export's Parquet shape: Parquet has no column for "text or messages", nor for
    # a free-form object, so a chat prompt is in `messages` and the settings are JSON text.
    if prompt_value is None and isinstance(record.get("messages"), list):
        prompt_value = record["messages"]
    if isinstance(settings, str):
        try:
            settings = orjson.loads(settings)
        except orjson.JSONDecodeError:
            raise LineError("'generation_settings' must be an object.") from None
    prompt = read_prompt(prompt_value)
    text = require_text(record, "completion")
    model = record.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip() or len(model) > 200):
        raise LineError("'model' must be a model version name of 1 to 200 characters.")
    if not isinstance(settings, dict):
        raise LineError("'generation_settings' must be an object.")
    token_count = record.get("token_count")
    if token_count is not None and (
        isinstance(token_count, bool)
        or not isinstance(token_count, int)
        or not 0 <= token_count <= MAX_TOKEN_COUNT
    ):
        raise LineError(f"'token_count' must be a whole number from 0 to {MAX_TOKEN_COUNT:,}.")
    return CompletionRecord(prompt, text, model.strip() if model else None, settings, token_count)


MODEL_METHODS = ("base", "imported", "reward_model", "dpo", "ppo")


def in_artifact_root(path: str | Path) -> bool:
    """Whether `path` is Arbiter's artifact folder or anything under it."""
    root = Path(settings.ARTIFACT_ROOT).resolve()
    try:
        return Path(path).resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return False


def read_model_version_line(record: dict) -> ModelVersionRecord:
    require_keys(record, "name")
    name = require_text(record, "name").strip()
    if not name or len(name) > 200:
        raise LineError("'name' must be 1 to 200 characters.")
    method = record.get("method", "imported")
    if method not in MODEL_METHODS:
        raise LineError(f"'method' must be one of {', '.join(MODEL_METHODS)}.")
    strings = {}
    for key, longest in (("base_model", 500), ("adapter_path", 1000)):  # the columns' lengths
        value = record.get(key, "")
        if not isinstance(value, str) or len(value) > longest:
            raise LineError(f"{key!r} must be a string of at most {longest} characters.")
        strings[key] = value
    if strings["adapter_path"] and in_artifact_root(strings["adapter_path"]):
        # What Arbiter trains for every project lives there: a version named into it could
        # train from another project's adapter.
        raise LineError(
            "'adapter_path' is inside Arbiter's artifact folder, which holds what Arbiter "
            "trains; register an adapter from a folder of its own."
        )
    objects = {}
    for key in ("hyperparameters", "metrics"):
        value = record.get(key) or {}
        if not isinstance(value, dict):
            raise LineError(f"{key!r} must be an object.")
        objects[key] = value
    return ModelVersionRecord(name=name, method=method, **strings, **objects)


def single_assistant_message(value: list, key: str) -> str:
    if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
        raise LineError(
            f"{key!r} must be one assistant message (multi-turn completions are not supported)."
        )
    content = value[0].get("content")
    if not isinstance(content, str):
        raise LineError(f"{key!r} needs text content.")
    return content


def read_trl_line(record: dict) -> PairRecord:
    require_keys(record, "chosen", "rejected")
    chosen, rejected = record["chosen"], record["rejected"]
    margin = read_margin(record)
    if isinstance(chosen, str) and isinstance(rejected, str):
        if "prompt" not in record:
            raise LineError(
                "string 'chosen'/'rejected' need a 'prompt' (for Anthropic HH transcripts use format 'hh')."
            )
        if not isinstance(record["prompt"], str):
            raise LineError(
                "'prompt', 'chosen' and 'rejected' must all be strings or all message lists."
            )
        return PairRecord(read_prompt(record["prompt"]), chosen, rejected, "a", margin)
    if not (isinstance(chosen, list) and isinstance(rejected, list)):
        raise LineError("'chosen' and 'rejected' must both be strings or both message lists.")
    prompt = record.get("prompt")
    if prompt is not None and not isinstance(prompt, str | list):
        raise LineError("'prompt' must be a string or a list of chat messages.")
    if prompt is None or (isinstance(prompt, str) and (len(chosen) > 1 or len(rejected) > 1)):
        # Implicit prompt: everything the two conversations share before their last message.
        # A string 'prompt' beside whole conversations (UltraFeedback binarized's shape) is set
        # aside, as TRL's maybe_extract_prompt does: the conversations hold the prompt.
        if chosen[:-1] != rejected[:-1] or not chosen[:-1]:
            raise LineError(
                ("without 'prompt', " if prompt is None else "")
                + "'chosen' and 'rejected' must share every message but the last."
            )
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
    return PairRecord(
        read_prompt(prompt),
        single_assistant_message(chosen, "chosen"),
        single_assistant_message(rejected, "rejected"),
        "a",
        margin,
    )


def parse_hh(transcript: str, key: str) -> list[tuple[str, str]]:
    """Split an HH transcript into (speaker, text) turns; refuse what would not render back exactly."""
    parts = HH_TURN.split(transcript)
    if parts[0] != "" or len(parts) < 3:
        raise LineError(f"{key!r} must be a transcript starting with '\\n\\nHuman: '.")
    turns = [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]
    if turns[0][0] != "Human":
        raise LineError(f"{key!r} must start with a Human turn.")
    return turns


def read_hh_line(record: dict) -> PairRecord:
    require_keys(record, "chosen", "rejected")
    chosen_turns = parse_hh(require_text(record, "chosen"), "chosen")
    rejected_turns = parse_hh(require_text(record, "rejected"), "rejected")
    shared = 0
    for left, right in zip(chosen_turns, rejected_turns, strict=False):
        if left != right:
            break
        shared += 1
    # The completions start at the last assistant turn that both transcripts have at or before
    # the point where they part; everything before it is the prompt.
    start = min(shared, len(chosen_turns) - 1, len(rejected_turns) - 1)
    while start >= 1 and not (
        chosen_turns[start][0] == "Assistant" and rejected_turns[start][0] == "Assistant"
    ):
        start -= 1
    if start < 1:
        raise LineError("'chosen' and 'rejected' share no Human turn before an Assistant answer.")
    messages = [
        {"role": HH_ROLES[speaker], "content": text} for speaker, text in chosen_turns[:start]
    ]
    return PairRecord(
        read_prompt(messages),
        render_hh_turns(chosen_turns[start:])[len("\n\nAssistant: ") :],
        render_hh_turns(rejected_turns[start:])[len("\n\nAssistant: ") :],
        "a",
        read_margin(record),
    )


def read_model_name(record: dict, key: str) -> str:
    name = record.get(key)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise LineError(f"{key!r} must be a model name of 1 to 200 characters.")
    return name.strip()


CONTINUATION_SPEAKERS = {
    "user": "User",
    "assistant": "Assistant",
    "system": "System",
    "tool": "Tool",
}


def continuation_text(messages: list, key: str) -> str:
    """A model's side of a battle from its first answer on, as one text (see the module's
    docstring)."""
    first = messages[0]
    if not isinstance(first, dict) or first.get("role") != "assistant":
        raise LineError(f"{key!r} must answer the shared prompt with an assistant message.")
    parts = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in CONTINUATION_SPEAKERS:
            raise LineError(f"{key!r} must be a list of messages with known roles.")
        if not isinstance(message.get("content"), str):
            raise LineError(f"{key!r} needs text content in every message.")
        parts.append(message["content"])
    return parts[0] + "".join(
        f"\n\n{CONTINUATION_SPEAKERS[m['role']]}: {text}"
        for m, text in zip(messages[1:], parts[1:], strict=True)
    )


def parted_conversations(conv_a: list, conv_b: list) -> tuple[PromptRecord, str, str]:
    """The prompt both conversations share, up to where they part at an answer each, and each
    one's side from there."""
    start = 0
    while start < min(len(conv_a), len(conv_b)) - 1 and conv_a[start] == conv_b[start]:
        start += 1
    while start > 0 and not all(
        isinstance(conv[start], dict) and conv[start].get("role") == "assistant"
        for conv in (conv_a, conv_b)
    ):
        start -= 1
    if start == 0:
        raise LineError(
            "'conversation_a' and 'conversation_b' must start with the same prompt, then "
            "an answer each."
        )
    return (
        read_prompt(conv_a[:start]),
        continuation_text(conv_a[start:], "conversation_a"),
        continuation_text(conv_b[start:], "conversation_b"),
    )


def kaggle_winner(record: dict) -> str:
    flags = [record[key] for key in KAGGLE_WINNER_FLAGS]
    if any(isinstance(f, bool) or f not in (0, 1) for f in flags) or sum(flags) != 1:
        raise LineError(
            "one of 'winner_model_a', 'winner_model_b' and 'winner_tie' must be 1 and the "
            f"others 0; got {', '.join(repr(f) for f in flags)}."
        )
    return KAGGLE_WINNER_FLAGS[list(KAGGLE_WINNER_FLAGS)[flags.index(1)]]


def encoded_turns(value: str, key: str) -> object:
    """Kaggle's JSON-encoded turns. The scraped answers hold lone surrogates (half an emoji cut
    off), which no UTF-8 text can: each becomes U+FFFD, as a browser shows it, so that the file
    imports as it is downloaded."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        if "surrogate" not in str(error):
            raise LineError(f"{key!r} must be a JSON-encoded list of turns: {error}.") from None
    try:
        turns = json.loads(value)  # takes lone surrogates, where orjson refuses them
    except ValueError as error:
        raise LineError(f"{key!r} must be a JSON-encoded list of turns: {error}.") from None
    if not isinstance(turns, list):
        return turns
    return [LONE_SURROGATE.sub("\ufffd", t) if isinstance(t, str) else t for t in turns]


def kaggle_turns(record: dict, key: str) -> list[str]:
    """A Kaggle column: a JSON-encoded list of turns, null where the model gave no answer."""
    value = record[key]
    if isinstance(value, str):
        value = encoded_turns(value, key)
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(t, str | None) for t in value)
    ):
        raise LineError(f"{key!r} must be a list of turns (strings).")
    return [turn or "" for turn in value]


def kaggle_battle(record: dict) -> tuple[PromptRecord, str, str]:
    require_keys(record, "prompt", "response_a", "response_b")
    asked, answers_a, answers_b = (
        kaggle_turns(record, key) for key in ("prompt", "response_a", "response_b")
    )
    if not len(asked) == len(answers_a) == len(answers_b):
        raise LineError(
            f"'prompt', 'response_a' and 'response_b' must hold as many turns each; got "
            f"{len(asked)}, {len(answers_a)} and {len(answers_b)}."
        )
    if len(asked) == 1:
        return read_prompt(asked[0]), answers_a[0], answers_b[0]

    def conversation(answers: list[str]) -> Messages:
        return [
            {"role": role, "content": text}
            for question, answer in zip(asked, answers, strict=True)
            for role, text in (("user", question), ("assistant", answer))
        ]

    return parted_conversations(conversation(answers_a), conversation(answers_b))


def read_arena_line(record: dict) -> PairRecord:
    require_keys(record, "model_a", "model_b")
    model_a, model_b = read_model_name(record, "model_a"), read_model_name(record, "model_b")
    if "winner" not in record and any(key in record for key in KAGGLE_WINNER_FLAGS):
        require_keys(record, *KAGGLE_WINNER_FLAGS)
        winner = kaggle_winner(record)
        prompt, a_text, b_text = kaggle_battle(record)
        return PairRecord(prompt, a_text, b_text, ARENA_WINNERS[winner], None, model_a, model_b)
    require_keys(record, "winner")
    winner = record["winner"]
    if not isinstance(winner, str) or winner not in ARENA_WINNERS:
        raise LineError(f"'winner' must be one of {', '.join(ARENA_WINNERS)}; got {winner!r}.")
    if "conversation_a" in record or "conversation_b" in record:
        require_keys(record, "conversation_a", "conversation_b")
        conv_a, conv_b = record["conversation_a"], record["conversation_b"]
        if not (isinstance(conv_a, list) and isinstance(conv_b, list)) or not conv_a or not conv_b:
            raise LineError("'conversation_a' and 'conversation_b' must be lists of messages.")
        prompt, a_text, b_text = parted_conversations(conv_a, conv_b)
    else:
        require_keys(record, "prompt", "response_a", "response_b")
        prompt = read_prompt(record["prompt"])
        a_text, b_text = require_text(record, "response_a"), require_text(record, "response_b")
    return PairRecord(prompt, a_text, b_text, ARENA_WINNERS[winner], None, model_a, model_b)


READERS = {
    "prompts": read_prompt_line,
    "model_versions": read_model_version_line,
    "completions": read_completion_line,
    "trl": read_trl_line,
    "hh": read_hh_line,
    "arena": read_arena_line,
}
PREFERENCE_FORMATS = ("trl", "hh", "arena")


def detect_format(record: dict) -> str | None:
    """Guess a file's format from its first record's keys."""
    if "model_a" in record and ("winner" in record or "winner_model_a" in record):
        return "arena"
    if "chosen" in record and "rejected" in record:
        if "prompt" not in record and isinstance(record["chosen"], str):
            return "hh"
        return "trl"
    if "completion" in record:
        return "completions"
    if "name" in record:
        return "model_versions"
    if "prompt" in record:
        return "prompts"
    return None


# --- rendering -------------------------------------------------------------------------------


def render_hh_turns(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)


def render_hh_prompt(text: str, messages: Messages | None) -> str:
    """A prompt as an HH transcript, without the final "\\n\\nAssistant:" cue."""
    if messages is None:
        return f"\n\nHuman: {text}"
    return render_hh_turns([(HH_SPEAKERS[m["role"]], m["content"]) for m in messages])


def prompt_as_messages(text: str, messages: Messages | None) -> Messages:
    return messages if messages is not None else [{"role": "user", "content": text}]


def prompt_as_text(text: str, messages: Messages | None) -> str:
    """TRL's standard (string) prompt: the text itself, or a chat rendered as an HH transcript
    ending in the assistant cue, so that prompt + " " + answer reads as the full conversation."""
    if messages is None:
        return text
    return render_hh_prompt(text, messages) + "\n\nAssistant:"
