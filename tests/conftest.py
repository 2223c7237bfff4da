"""Fixtures for every test: a private certificate authority for TLS on loopback, a real S3
server on loopback (started only when a test asks for it), and lines shown at the end of
every run."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Generator, Iterator

import pytest

from harness.certs import CertificatePaths, make_certificates
from harness.s3_faults import StoreFaultProxy
from harness.seaweedfs import SeaweedServer


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


REPORT_LINES = pytest.StashKey[list[str]]()
"""Lines a test wants shown at the end of every run, even a quiet one (a torture seed)."""
REPORT_PROPERTY = "report line"
"""Under this name a test's report carries its lines to the process that shows the
summary: with pytest-xdist, the test ran in a worker and its stash stays there."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT_LINES] = []
    # What sa1b keeps by default in the user's cache (the local state of an s3:// output)
    # goes to a folder of this session's, never to the real ~/.cache.
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sa1b-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "teardown":  # the test has written its lines by then
        lines = item.config.stash[REPORT_LINES]
        report.user_properties.extend((REPORT_PROPERTY, line) for line in lines)
        lines.clear()
    return report


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker under ``--dist loadgroup``: name each test's xdist_group
    after its id (``path::test@group``), which is how the scheduler finds the group.

    pytest-xdist does so itself by setting the string ``_nodeid``, which pytest 9.2's
    structured node ids no longer read: the groups were silently spread over the workers
    (pytest-xdist issue 1386). Where that still works, the id has its ``@`` already."""
    if not config.getoption("loadgroup", default=False):  # set in xdist's workers alone
        return
    for item in items:
        groups = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if not groups or "@" in item.nodeid:
            continue
        grouped = f"{item.nodeid}@{'_'.join(sorted(groups))}"
        if hasattr(item, "_id"):  # pytest >= 9.2
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(grouped)
        else:
            item._nodeid = grouped
        if item.nodeid != grouped:  # never spread a group silently
            raise pytest.UsageError(f"cannot name the xdist_group of {item.nodeid}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, line in getattr(report, "user_properties", ()):
                if name == REPORT_PROPERTY:
                    terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedServer]:
    """A real S3 server (SeaweedFS) on loopback for the whole run, its bucket
    ``sa1b-test`` created; started only when a test asks for it. Tests share it: each
    writes under a prefix of its own (:func:`s3_prefix`)."""
    with SeaweedServer(buckets=["sa1b-test"]) as server:
        yield server


#: Set in every test that reaches S3: no shared config or credentials file of the machine,
#: and no instance-role lookup (it would reach 169.254.169.254, off loopback).
AWS_ISOLATION = {
    "AWS_CONFIG_FILE": "/nonexistent/sa1b-test/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/sa1b-test/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_AWS_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_CA_BUNDLE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


def aws_environment(variables: dict[str, str]) -> dict[str, str]:
    """This process's environment with ``variables`` as the only AWS settings (for a CLI
    run in a subprocess)."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {**kept, **AWS_ISOLATION, **variables}


@pytest.fixture
def s3_environment(seaweedfs: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's AWS settings: the server's endpoint and credentials as a user would
    set them, and nothing else of the machine's."""
    for name in [*_AWS_UNSET, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**AWS_ISOLATION, **seaweedfs.environment}.items():
        monkeypatch.setenv(name, value)
    return seaweedfs.environment


@pytest.fixture
def s3_faults(
    seaweedfs: SeaweedServer, s3_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreFaultProxy]:
    """The suite's SeaweedFS behind a fault proxy (:mod:`harness.s3_faults`), passing
    everything through until the test sets a fault::

        s3_faults.set(StoreFault(kind="slow_down", operation="UploadPart", times=2))
        run_cli(..., env=aws_environment(s3_faults.environment))
        assert s3_faults.faulted("UploadPart") == 2

    This process's ``AWS_ENDPOINT_URL`` is the proxy's (as :func:`s3_environment` sets
    the rest); ``s3_faults.environment`` holds the same variables for a CLI run in a
    subprocess; ``count``, ``faulted`` and ``requests`` tell what the store was asked."""
    with StoreFaultProxy(seaweedfs.endpoint_url, environment=s3_environment) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        yield proxy


@pytest.fixture
def s3_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses, named after the test (its parameters' slashes and
    brackets made dashes)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)
    return f"{name}-{secrets.token_hex(4)}"
