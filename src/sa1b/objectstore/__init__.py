"""Writing into S3 and S3-compatible object storage (``-o s3://BUCKET/PREFIX``).

- :mod:`~sa1b.objectstore.location` what ``-o`` names: a local folder or a bucket location;
  other schemes and typos refused (pure);
- :mod:`~sa1b.objectstore.parts` a shard cut into multipart-upload parts, and which parts
  its downloaded bytes make whole (pure);
- :mod:`~sa1b.objectstore.bucket` the client: exactly the S3 calls sa1b makes, over
  botocore (the ``s3`` extra, imported only when an ``s3://`` output is used);
- :mod:`~sa1b.objectstore.failures` botocore's errors translated into sa1b's tree.
"""
