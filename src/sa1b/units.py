"""Parse and print byte sizes, rates and counts the way people write them."""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?(?:/s)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``170M`` -> 178257920. K, M, G, T are powers of 1024; ``MB``, ``MiB``, ``/s`` allowed."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r} (write e.g. 500K, 100M, 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if round(abs(count), 0 if unit == "B" else 1) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """3725 -> '1h02m'."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def plural(count: int, noun: str) -> str:
    """(1, 'file') -> '1 file', (3, 'file') -> '3 files'."""
    return f"{count} {noun if count == 1 else noun + 's'}"
