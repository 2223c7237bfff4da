"""Extraction: a shard's members, taken out of its partial file while it downloads.

- :mod:`~sa1b.extract.shard` follows one growing tar (headers by
  :mod:`sa1b.tarformat`, targets by :mod:`sa1b.layout`), copies members into a private
  staging folder, checks the archive's end and moves the staged files into the layout;
- :mod:`~sa1b.extract.extractors` runs one extraction thread per shard in flight and
  hands the engine its result; a restarted download supersedes its extraction.

The engine's publisher decides when a shard's extraction is published.
"""
