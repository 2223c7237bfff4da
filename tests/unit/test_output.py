"""What the CLI writes for people: one line per record, cleaned; tracebacks to the log file only."""

from __future__ import annotations

import io
import logging

from sa1b.cli.output import Output, clean_record


def test_screen_gets_one_clean_line_and_the_log_file_the_traceback() -> None:
    screen, log_file = io.StringIO(), io.StringIO()
    logger = logging.getLogger("sa1b.test-output")
    logger.propagate = False
    logger.addHandler(Output(screen).log_handler())
    to_file = logging.StreamHandler(log_file)
    to_file.addFilter(clean_record)
    logger.addHandler(to_file)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("internal error at https://h/x.tar?oh=SECRET \x1b[2J")
    finally:
        logger.handlers.clear()
    assert screen.getvalue() == "sa1b: ERROR: internal error at https://h/x.tar?… \\x1b[2J\n"
    assert "Traceback" in log_file.getvalue() and "ValueError: boom" in log_file.getvalue()
    assert "SECRET" not in log_file.getvalue()
