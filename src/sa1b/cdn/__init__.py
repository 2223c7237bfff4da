"""A local stand-in for Meta's SA-1B CDN, for tests, benchmarks and demos.

Nothing here is needed to download the real dataset. It makes synthetic shards that look like
the real ones (:mod:`~sa1b.cdn.synth`: tar of decodable JPEGs and annotation JSON with valid
COCO RLE masks) and serves them over HTTP/1.1 under signed, expiring, CDN-shaped URLs
(:mod:`~sa1b.cdn.server`), with scripted faults (:mod:`~sa1b.cdn.faults`). Standard library only.

Modules: ``jpeg`` (solid-colour JPEG encoder), ``rle`` (COCO compressed RLE), ``synth`` (shards),
``signing`` (URLs), ``byteranges`` (Range/If-Range rules), ``faults``, ``serving`` (the start
and stop the harness's servers share), ``server``, ``cli``.
"""

from sa1b.cdn.faults import Fault, FaultKind
from sa1b.cdn.server import CDNServer, LinksStyle, RequestRecord
from sa1b.cdn.signing import sign_url, verify
from sa1b.cdn.synth import ShardInfo, make_dataset, make_shard, shard_name, write_checksums

__all__ = [
    "CDNServer",
    "Fault",
    "FaultKind",
    "LinksStyle",
    "RequestRecord",
    "ShardInfo",
    "make_dataset",
    "make_shard",
    "shard_name",
    "sign_url",
    "verify",
    "write_checksums",
]
