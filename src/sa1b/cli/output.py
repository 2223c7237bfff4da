"""Where the CLI writes for people: rich on a terminal, plain lines anywhere else.

rich is imported only for a terminal, which keeps a piped or scripted run's start-up
(and its CPU per GB on short runs) lower.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TextIO

from sa1b.redaction import clean

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
        text = clean(text, limit=2000)  # a last net: messages may quote servers and files
        if self.console is not None:
            from rich.markup import escape

            self.console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)
        else:
            print(f"error: {text}", file=self.stream, flush=True)

    def log_handler(self) -> logging.Handler:
        """A logging handler that does not tear the live display."""
        handler: logging.Handler
        if self.console is not None:
            from rich.logging import RichHandler

            handler = RichHandler(
                console=self.console, show_time=False, show_path=False, markup=False
            )
            handler.setFormatter(NoTraceback("%(message)s"))
        else:
            handler = logging.StreamHandler(self.stream)
            handler.setFormatter(NoTraceback("sa1b: %(levelname)s: %(message)s"))
        handler.addFilter(clean_record)
        return handler


class NoTraceback(logging.Formatter):
    """One line per record on the screen: a traceback (an internal error) goes to the
    log file only, where ``--log-file`` puts it."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:  # the log file's handler, after this one, still gets the traceback
            record.exc_info, record.exc_text, record.stack_info = saved


def clean_record(record: logging.LogRecord) -> bool:
    """A logging filter: the message without signatures or terminal control (it may
    quote a server), whatever the code that logged it."""
    record.msg, record.args = clean(record.getMessage(), limit=4000), None
    return True
