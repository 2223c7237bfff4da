"""Loopback servers for the tests and the benchmarks, kept out of the wheel.

- :mod:`~harness.nginx` a real nginx serving a folder over HTTP or HTTPS;
- :mod:`~harness.certs` a private CA and a certificate for ``127.0.0.1``.

The CDN stand-in users can run (``sa1b cdn``) stays in :mod:`sa1b.cdn`.
"""
