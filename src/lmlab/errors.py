"""One error type for everything a user can get wrong: a one-line message, exit code 2."""

from __future__ import annotations


class LmlabError(Exception):
    """A problem with the user's input: says what is wrong and what to do about it.

    The CLI prints it as one line and exits with code 2; the server answers 4xx.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))
