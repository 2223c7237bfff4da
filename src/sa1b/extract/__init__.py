"""Extraction: a shard's members, taken out of its partial file while it downloads.

- :mod:`~sa1b.extract.shard` follows one growing tar (read and judged by sa1b's one
  tar reader, :mod:`sa1b.tarwalk`; targets by :mod:`sa1b.layout`; reads by
  :mod:`~sa1b.extract.reader`), copies members into a private staging folder and
  moves the staged files into the layout;
- :mod:`~sa1b.extract.archive` writes a shard's one tar for the ``wds`` layout;
- :mod:`~sa1b.extract.extractors` runs one extraction thread per shard in flight and
  hands the engine its result; a restarted download supersedes its extraction;
- :mod:`~sa1b.extract.extents` says where each recorded member's bytes are (a file, or
  a stretch of a wds tar), for the loader and for :mod:`~sa1b.extract.audit`, which
  checks after the fact what a download left.

The engine's publisher decides when a shard's extraction is published.
"""
