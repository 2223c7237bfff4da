"""Read a shard's partial file in order, below the prefix its download has written.

``wait(end)`` returns once bytes ``[0, end)`` are on disk (the engine's); :class:`Reader`
waits before every read, hashes what it reads when a digest is computed in the same
pass, and copies ranges to other files in the kernel (``copy_file_range``) when no
digest must see the bytes and the filesystem allows it, else through memory.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

COPY_CHUNK = 8 * 1024 * 1024

Wait = Callable[[int], None]
"""``wait(end)`` returns once bytes ``[0, end)`` are on disk; raises to abort."""

_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


class Reader:
    """Reads the partial file in order below the prefix, hashing what it reads."""

    def __init__(self, fd: int, size: int, wait: Wait, digest: hashlib._Hash | None):
        self.fd = fd
        self.size = size
        self.wait = wait
        self.digest = digest
        self.in_kernel = True

    def read(self, offset: int, length: int) -> bytes:
        self.wait(offset + length)
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise OSError(f"short read at {offset}")
        if self.digest is not None:
            self.digest.update(data)
        return data

    def copy(self, offset: int, length: int, out_fd: int) -> None:
        """Copy ``[offset, offset + length)`` to ``out_fd`` at its position, waiting for it.

        In the kernel (``copy_file_range``) unless the digest must see the bytes or
        the filesystem cannot (some network filesystems): then through a buffer.
        """
        start = os.lseek(out_fd, 0, os.SEEK_CUR)
        done = 0
        while done < length:
            step = min(COPY_CHUNK, length - done)
            position = offset + done
            if self.digest is None and self.in_kernel:
                self.wait(position + step)
                try:
                    _copy_in_kernel(self.fd, out_fd, position, step)
                except OSError as error:
                    if error.errno not in _NO_KERNEL_COPY:
                        raise
                    log.info(
                        "copy_file_range unsupported here (%s); copying through memory",
                        error.strerror,
                    )
                    self.in_kernel = False
                    os.lseek(out_fd, start + done, os.SEEK_SET)  # past a partial copy
                    continue
            else:
                write_all(out_fd, self.read(position, step))
            done += step


def _copy_in_kernel(source: int, target: int, offset: int, length: int) -> None:
    copied = 0
    while copied < length:
        n = os.copy_file_range(source, target, length - copied, offset + copied)
        if n <= 0:
            raise OSError(f"copy_file_range copied {n} bytes")
        copied += n


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
