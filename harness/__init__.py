"""Loopback servers for the tests and the benchmarks, kept out of the wheel.

- :mod:`~harness.nginx` a real nginx serving a folder over HTTP or HTTPS;
- :mod:`~harness.certs` a private CA and a certificate for ``127.0.0.1``;
- :mod:`~harness.seaweedfs` a real S3 server (SeaweedFS) with a bucket and credentials.

The CDN stand-in users can run (``sa1b cdn``) stays in :mod:`sa1b.cdn`.
"""
