"""One download across many machines, on a scheduler the user already runs.

- :mod:`sa1b.split` (pure) gives each worker of an array job (Slurm, a Kubernetes
  indexed Job, ``--shard-index``) its part; each worker is an ordinary download.
- :mod:`~sa1b.cluster.ray_engine` runs the download as Ray tasks on a Ray cluster,
  with one display and one summary on the driver. ``ray`` is imported there alone,
  and only when that engine runs.
"""
