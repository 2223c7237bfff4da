"""Which filesystem holds a folder, and whether one ``syncfs`` there is as strict as an
``fsync`` of each file (:mod:`sa1b.store.filesystems`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sa1b.store.filesystems import (
    DIRECT_FILESYSTEMS,
    filesystem_type,
    mount_type,
    syncfs_suffices,
)


@pytest.mark.parametrize(
    ("kernel", "filesystem", "suffices"),
    [
        ("6.18.44-fc-v1300", "ext4", True),
        ("5.8.0", "xfs", True),
        ("5.15.0-91-generic", "nfs4", True),
        ("5.7.19", "ext4", False),  # syncfs does not report write errors yet
        ("4.18.0-513.el8.x86_64", "xfs", False),
        ("6.8.0", "fuse.gcsfuse", False),  # the daemon sees each fsync, not a syncfs
        ("6.8.0", "fuseblk", False),
        ("6.8.0", "lustre", False),  # not known here: an fsync each
        ("6.8.0", None, False),
        ("unknown", "ext4", False),
    ],
)
def test_syncfs_is_used_only_where_it_is_as_strict(
    kernel: str, filesystem: str | None, suffices: bool
) -> None:
    assert syncfs_suffices(kernel, filesystem) is suffices


@pytest.mark.parametrize(
    ("filesystem", "direct"),
    [
        ("ext4", True),
        ("xfs", True),
        ("ext2", False),  # not measured
        ("btrfs", False),
        ("tmpfs", False),  # memory already
        ("nfs4", False),  # each direct write waits for the server
        ("lustre", False),
        ("fuse.gcsfuse", False),
        (None, False),
    ],
)
def test_members_are_written_direct_only_onto_a_local_disk_measured(
    filesystem: str | None, direct: bool
) -> None:
    assert (filesystem in DIRECT_FILESYSTEMS) is direct


MOUNTINFO = """\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:23 / /proc rw,nosuid - proc proc rw
40 22 0:35 / /data rw - xfs /dev/vdb rw
41 40 0:36 / /data/shared rw - nfs4 server:/export rw
42 22 0:37 / /mnt/my\\040disk rw - ext2 /dev/loop0 rw
43 42 0:38 / /mnt/my\\040disk rw - tmpfs tmpfs rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "ext4"),
        ("/home/user/out", "ext4"),
        ("/data", "xfs"),
        ("/data/out/.sa1b/staging", "xfs"),
        ("/data/shared/out", "nfs4"),  # the deepest mount above it
        ("/data/sharedness", "xfs"),  # a prefix of a name is not a folder above it
        ("/mnt/my disk/out", "tmpfs"),  # escaped spaces; the last mount on a point wins
        ("/proc/self", "proc"),
    ],
)
def test_the_deepest_mount_above_a_path_names_its_filesystem(path: str, kind: str) -> None:
    assert mount_type(MOUNTINFO, path) == kind


def test_no_mount_above_a_path_names_none() -> None:
    assert mount_type("", "/data") is None
    assert mount_type("garbage without the separator\n", "/data") is None


def test_the_filesystem_of_a_real_folder_is_what_findmnt_says(tmp_path: Path) -> None:
    findmnt = shutil.which("findmnt")
    if findmnt is None:
        pytest.skip("findmnt (util-linux) is not installed")
    said = subprocess.run(
        [findmnt, "-n", "-o", "FSTYPE", "--target", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert filesystem_type(tmp_path) == said
    assert filesystem_type(tmp_path / "not made yet" / "staging") == said
    assert filesystem_type(Path("/proc/self")) == "proc"
