"""Where the CLI writes for people: rich on a terminal, plain lines anywhere else.

rich is imported only for a terminal, which keeps a piped or scripted run's start-up
(and its CPU per GB on short runs) lower.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console


class Output:
    """Lines for people on ``stream``; ``console`` is rich's, on a terminal only."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.console: Console | None = None
        if stream.isatty():
            from rich.console import Console

            self.console = Console(file=stream)

    @property
    def is_terminal(self) -> bool:
        return self.console is not None

    def line(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def error(self, text: str) -> None:
        if self.console is not None:
            from rich.markup import escape

            self.console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)
        else:
            print(f"error: {text}", file=self.stream, flush=True)

    def log_handler(self) -> logging.Handler:
        """A logging handler that does not tear the live display."""
        if self.console is not None:
            from rich.logging import RichHandler

            return RichHandler(console=self.console, show_time=False, show_path=False)
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(logging.Formatter("sa1b: %(levelname)s: %(message)s"))
        return handler
