"""The task instruction is operator input that reaches the model's prompt: bounded and checked before use.

Refused: text longer than `max_chars` (a 20 000-word prompt stalls inference for tens of seconds), text carrying
one of the model's special tokens (an image placeholder or a chat-turn marker in the text changes the layout of
the model's input and fails every inference), and control characters other than whitespace. `for_log` cuts any
operator text to a length a log line or a service reply can carry.
"""

from __future__ import annotations

from collections.abc import Iterable


def for_log(text: str, limit: int = 120) -> str:
    """repr(text), cut to about `limit` characters with the full length said."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"


class InstructionRules:
    def __init__(self, max_chars: int, special_tokens: Iterable[str] = ()) -> None:
        self.max_chars = max_chars
        self.special_tokens: tuple[str, ...] = ()
        self.set_special_tokens(special_tokens)

    def set_special_tokens(self, tokens: Iterable[str]) -> None:
        """The model's special tokens (its tokenizer's); empty strings are ignored."""
        self.special_tokens = tuple(sorted({str(t) for t in tokens if str(t)}, key=len, reverse=True))

    def check(self, text: str) -> str:
        """'' if `text` may be the instruction, else why not (one sentence, short)."""
        if len(text) > self.max_chars:
            return f"instruction too long: {len(text)} characters (at most {self.max_chars})"
        for token in self.special_tokens:
            if token in text:
                return f"instruction contains the model's special token {token!r}"
        bad = sorted({c for c in text if not c.isprintable() and c not in "\n\t"})
        if bad:
            return f"instruction contains control characters {''.join(bad)!r}"
        return ""
