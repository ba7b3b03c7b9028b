"""An :class:`argparse.ArgumentParser` whose errors are one line and a hint, not the usage.

A mistyped value or option gets the closest accepted one (``did you mean --exposure?``); used by the
``rlenhance`` command line and the trainers (:func:`experiments.config.parse`).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable
from typing import NoReturn

__all__ = ["HintingParser", "closest"]


def closest(word: str, accepted: Iterable[str]) -> str | None:
    """The accepted word nearest ``word`` (:func:`difflib.get_close_matches`), or None when none is near."""
    found = difflib.get_close_matches(word, list(accepted), n=1, cutoff=0.6)
    return found[0] if found else None


class HintingParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` (its sub-parsers too) that answers a bad command line with the
    error, the closest accepted value or option, and where the usage is, on stderr with exit code 2."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: ") and ";" not in message:  # not already hinted
            unknown = next((word for word in message.split()[2:] if word.startswith("-")), "")
            near = closest(unknown.split("=", 1)[0], self.option_strings())
            if near is not None:
                message += f"; did you mean {near}?"
        self.exit(2, f"{self.prog}: error: {message}\n(--help lists every option)\n")

    def option_strings(self) -> set[str]:
        """The options of this parser and of its sub-commands (argparse reports a sub-command's
        unrecognised arguments from the top parser)."""
        found = set(self._option_string_actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in action.choices.values():
                    found |= parser.option_strings() if isinstance(parser, HintingParser) else set()
        return found

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is None or value in action.choices:
            return
        accepted = [str(choice) for choice in action.choices]
        near = closest(str(value), accepted)
        hint = f"; did you mean {near!r}?" if near is not None else ""
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint} (choose from {', '.join(accepted)})")

