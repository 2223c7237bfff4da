#!/usr/bin/env python3
"""Which S3 client library sa1b streams shards through: measured side by side.

Starts a private SeaweedFS (``harness.seaweedfs``, ``weed server -s3`` on loopback) and uploads
the same ``--total`` bytes from memory as one multipart upload of ``--part``-sized parts, with
``--inflight`` parts in flight (threads, or the library's own concurrency), each part with a
SHA-256 checksum in the upload (``x-amz-checksum-sha256``; botocore's CRC32C needs the
``awscrt`` extension, SeaweedFS takes SHA-256 and checks it). Each library runs in a child
process so its CPU time and peak RSS are its own; the order alternates by round and SeaweedFS
is started afresh for each round (its data removed after), median of ``--rounds``:

* ``botocore``  the low-level calls (CreateMultipartUpload, UploadPart, CompleteMultipartUpload)
                from a thread pool, as sa1b makes them: the part's SHA-256 as its checksum,
                the payload not signed again (``payload_signing_enabled=False``);
* ``obstore``   ``obstore.put`` of an iterator of parts (``chunk_size``, ``max_concurrency``),
                ``checksum_algorithm=sha256``: its own multipart;
* ``minio``     minio-py's multipart calls (private ``_upload_part`` & co: it has no public
                ones) from a thread pool, the checksum as a header of each part (its
                CompleteMultipartUpload cannot name the parts' checksums, so the upload is
                created without a checksum algorithm).

    .venv/bin/python benchmarks/s3_client.py --total 1024 --part 64 --inflight 4 --rounds 3
    .venv/bin/python benchmarks/s3_client.py --total 1024 --part 16 --inflight 8 --https

``--https``: the store serves TLS with a private CA (``harness.certs``), as a cloud store
does; every client trusts that CA.

Every upload is checked afterwards (HeadObject: its size). The extra libraries are installed
by hand for this (``pip install obstore minio``); botocore is sa1b's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's harness

if TYPE_CHECKING:
    from harness.certs import CertificatePaths
    from harness.seaweedfs import SeaweedServer

LIBRARIES = ("botocore", "obstore", "minio")
MIB = 1 << 20
MB = 1_000_000
BUCKET = "bench"


def sha256_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


Upload = Callable[[str, bytes, int], None]
"""(key, part's bytes, how many parts): one multipart upload of that part repeated."""


def connect_botocore(env: dict[str, str], inflight: int) -> Upload:
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    client: Any = session.create_client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        verify=env.get("AWS_CA_BUNDLE"),
        config=Config(
            max_pool_connections=inflight,
            request_checksum_calculation="when_required",
            retries={"total_max_attempts": 1},
            # The signed checksum header binds the body: no second SHA-256 for SigV4
            # over plain HTTP (over HTTPS botocore skips it anyway), as sa1b does.
            s3={"payload_signing_enabled": False},
        ),
    )

    def upload(key: str, block: bytes, parts: int) -> None:
        answer = client.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256")
        upload_id = answer["UploadId"]

        def one(number: int) -> dict[str, Any]:
            checksum = base64.b64encode(sha256_of(block)).decode()
            answer = client.upload_part(
                Bucket=BUCKET,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=block,
                ChecksumSHA256=checksum,
            )
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

        with ThreadPoolExecutor(inflight) as pool:
            done = list(pool.map(one, range(1, parts + 1)))
        client.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
        )

    return upload


def connect_obstore(env: dict[str, str], inflight: int) -> Upload:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        endpoint=env["AWS_ENDPOINT_URL"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region=env["AWS_REGION"],
        checksum_algorithm="sha256",
        client_options=(
            {"root_certificate": Path(env["AWS_CA_BUNDLE"]).read_text()}
            if "AWS_CA_BUNDLE" in env
            else {"allow_http": True}
        ),
    )

    def upload(key: str, block: bytes, parts: int) -> None:
        def blocks() -> Iterator[bytes]:
            for _ in range(parts):
                yield block

        obstore.put(
            store,
            key,
            blocks(),
            use_multipart=True,
            chunk_size=len(block),
            max_concurrency=inflight,
        )

    return upload


def connect_minio(env: dict[str, str], inflight: int) -> Upload:
    import urllib3
    from minio import Minio
    from minio.datatypes import Part

    client = Minio(
        env["AWS_ENDPOINT_URL"].split("://", 1)[1],
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        region=env["AWS_REGION"],
        secure="AWS_CA_BUNDLE" in env,
        http_client=urllib3.PoolManager(
            maxsize=inflight, retries=False, ca_certs=env.get("AWS_CA_BUNDLE")
        ),
    )

    def upload(key: str, block: bytes, parts: int) -> None:
        # Created without a checksum algorithm: minio-py's CompleteMultipartUpload cannot
        # carry the parts' checksums, which an upload created with one requires. Each part
        # still sends its checksum, which the server checks.
        upload_id = client._create_multipart_upload(BUCKET, key, {})

        def one(number: int) -> Part:
            checksum = base64.b64encode(sha256_of(block)).decode()
            headers = {"x-amz-checksum-sha256": checksum}
            etag = client._upload_part(BUCKET, key, block, headers, upload_id, number)
            return Part(number, etag)

        with ThreadPoolExecutor(inflight) as pool:
            done = list(pool.map(one, range(1, parts + 1)))
        client._complete_multipart_upload(BUCKET, key, upload_id, done)

    return upload


CONNECTORS: dict[str, Callable[[dict[str, str], int], Upload]] = {
    "botocore": connect_botocore,
    "obstore": connect_obstore,
    "minio": connect_minio,
}


def child(args: argparse.Namespace) -> None:
    """One upload in this process; prints its seconds, CPU seconds and peak RSS as JSON."""
    env = json.loads(os.environ["BENCH_S3_ENV"])
    block = os.urandom(args.part * MIB)
    # The import and the client are made before the clock starts: a run makes them once.
    upload = CONNECTORS[args.child](env, args.inflight)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    upload(args.key, block, args.total // args.part)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_kib": after.ru_maxrss}))


def run_one(
    library: str, server: SeaweedServer, args: argparse.Namespace, key: str
) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", library, "--key", key]
    command += ["--total", str(args.total), "--part", str(args.part)]
    command += ["--inflight", str(args.inflight)]
    env = {**os.environ, "BENCH_S3_ENV": json.dumps(server.environment)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{library} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    size = server.client().head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    if size != args.total * MIB:
        raise SystemExit(f"{library}: the object has {size} bytes, not {args.total * MIB}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1024, help="MiB uploaded per run")
    parser.add_argument("--part", type=int, default=64, help="part size, MiB")
    parser.add_argument("--inflight", type=int, default=4, help="parts in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--https", action="store_true", help="the store over HTTPS (a private CA)")
    parser.add_argument("--child", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    # Imported here, not at the top: the harness imports botocore, which would then sit in
    # every child's memory and make its import free for the one measured.
    from harness.certs import make_certificates

    with tempfile.TemporaryDirectory(prefix="s3-bench-tls-") as folder:
        tls = make_certificates(Path(folder)) if args.https else None
        results = measure(args, tls)
    report(args, results, https=tls is not None)


def measure(
    args: argparse.Namespace, tls: CertificatePaths | None
) -> dict[str, list[dict[str, float]]]:
    """Each library's runs, alternating by round, SeaweedFS afresh for each round."""
    from harness.seaweedfs import SeaweedServer

    libraries = args.libraries.split(",")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in libraries}
    for round_number in range(args.rounds):
        order = libraries if round_number % 2 == 0 else libraries[::-1]
        with SeaweedServer(buckets=[BUCKET], tls=tls) as server:
            for library in order:
                subprocess.run(["sync"], check=False)
                key = f"{library}-{round_number}"
                result = run_one(library, server, args, key)
                results[library].append(result)
                server.client().delete_object(Bucket=BUCKET, Key=key)
                print(
                    f"round {round_number + 1} {library}: "
                    f"{args.total * MIB / MB / result['seconds']:.0f} MB/s",
                    file=sys.stderr,
                )
    return results


def report(
    args: argparse.Namespace, results: dict[str, list[dict[str, float]]], *, https: bool
) -> None:
    libraries = list(results)
    gigabytes = args.total * MIB / 1e9
    print(
        f"{args.total} MiB as {args.total // args.part} parts of {args.part} MiB, "
        f"{args.inflight} in flight, SHA-256 per part, {'HTTPS' if https else 'HTTP'}, "
        f"median of {args.rounds}"
    )
    print("| library | MB/s | CPU s/GB | peak RSS MB |")
    print("|---|---|---|---|")
    for library in libraries:
        runs = results[library]
        speed = statistics.median(args.total * MIB / MB / run["seconds"] for run in runs)
        cpu = statistics.median(run["cpu"] / gigabytes for run in runs)
        rss = statistics.median(run["rss_kib"] * 1024 / MB for run in runs)
        print(f"| {library} | {speed:.0f} | {cpu:.2f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
