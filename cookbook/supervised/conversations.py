"""Chat conversations from a JSONL file, checked line by line, and rendered to datums.

Loading checks every line and names the file and line of the first bad one (or skips bad lines
and counts them, when asked). Rendering goes through the model's renderer, so SFT trains on the
same chat format RL samples in.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cookbook.errors import UserError
from cookbook.renderers.base import Message, Role, TrainOnWhat
from cookbook.supervised.datums import datum_from_tokens

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.renderers.base import Renderer

logger = logging.getLogger(__name__)

ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversations:
    """The usable conversations of one JSONL file."""

    path: Path
    conversations: list[list[Message]]
    """One list of messages per usable line, in file order."""
    line_numbers: list[int]
    """The 1-based line each conversation came from (for error messages)."""
    skipped_lines: int = 0
    """Bad lines skipped because the caller asked to skip them."""
    first_skip_reason: str | None = None
    """Why the first skipped line was bad (`line 7: unknown role ...`)."""


def parse_conversation(obj: object) -> list[Message]:
    """The messages of one decoded JSONL line; `ValueError` with the reason if it is not a
    usable conversation (no `messages`, empty, unknown role, no assistant turn...)."""
    if not isinstance(obj, dict):
        raise ValueError(
            f'expected a JSON object like {{"messages": [...]}}, got {type(obj).__name__}'
        )
    if "messages" not in obj:
        keys = ", ".join(repr(k) for k in list(obj)[:5]) or "none"
        raise ValueError(f'no "messages" key (keys found: {keys})')
    raw = obj["messages"]
    if not isinstance(raw, list):
        raise ValueError(f'"messages" must be a list of messages, got {type(raw).__name__}')
    if not raw:
        raise ValueError('empty conversation ("messages" is [])')
    messages: list[Message] = []
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict):
            raise ValueError(f'message {i} is not an object with "role" and "content"')
        role = m.get("role")
        if role not in ROLES:
            raise ValueError(
                f"message {i} has unknown role {role!r}; use one of: {', '.join(ROLES)}"
            )
        content = m.get("content")
        if not isinstance(content, str):
            raise ValueError(f'message {i} has no string "content"')
        messages.append(Message(role=cast(Role, role), content=content))
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("no assistant message to train on")
    return messages


def load_conversations(
    path: str | Path,
    *,
    skip_bad_lines: bool = False,
    skip_option: str = "dataset.skip_bad_lines",
) -> Conversations:
    """Read `path` (one `{"messages": [...]}` object per line; blank lines are ignored).

    A bad line raises `UserError` naming `path:line` and the fix, unless `skip_bad_lines`, in
    which case it is skipped and counted. `skip_option` is the option name the message suggests.
    """
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"dataset file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise UserError(f"dataset path {path} is a directory; give a .jsonl file") from None
    except OSError as e:
        raise UserError(f"cannot read dataset file {path}: {e.strerror}") from None

    conversations: list[list[Message]] = []
    line_numbers: list[int] = []
    skipped = 0
    first_reason: str | None = None
    for lineno, line_bytes in enumerate(raw_bytes.splitlines(), start=1):
        if not line_bytes.strip():
            continue
        try:
            try:
                line = line_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("not valid UTF-8 text") from None
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise ValueError("JSON nested too deeply to be a conversation") from None
            messages = parse_conversation(obj)
        except ValueError as e:
            if not skip_bad_lines:
                raise UserError(
                    f"{path}:{lineno}: {e}; fix the line or set {skip_option}=true to skip "
                    "bad lines"
                ) from None
            skipped += 1
            if first_reason is None:
                first_reason = f"line {lineno}: {e}"
            continue
        conversations.append(messages)
        line_numbers.append(lineno)

    if not conversations:
        detail = f" ({skipped} bad lines skipped, first: {first_reason})" if skipped else ""
        raise UserError(f"{path} has no usable conversations{detail}")
    if skipped:
        logger.warning(
            "%s: skipped %d bad line(s) of %d (first: %s)",
            path,
            skipped,
            skipped + len(conversations),
            first_reason,
        )
    return Conversations(
        path=path,
        conversations=conversations,
        line_numbers=line_numbers,
        skipped_lines=skipped,
        first_skip_reason=first_reason,
    )


def sources_of(conversations: Conversations) -> list[str]:
    """`file:line` of each conversation, in order (for errors about a datum made from it)."""
    return [f"{conversations.path}:{n}" for n in conversations.line_numbers]


def render_conversations(
    conversations: Conversations, renderer: Renderer, train_on_what: TrainOnWhat
) -> list[tinker_types.Datum]:
    """One datum per conversation, rendered by `renderer` (errors name the file and line)."""
    datums_D: list[tinker_types.Datum] = []
    for messages, lineno in zip(
        conversations.conversations, conversations.line_numbers, strict=True
    ):
        try:
            tokens_T, weights_T = renderer.build_supervised_example(messages, train_on_what)
            datums_D.append(datum_from_tokens(tokens_T, weights_T))
        except ValueError as e:
            raise UserError(f"{conversations.path}:{lineno}: cannot render it: {e}") from None
    return datums_D
