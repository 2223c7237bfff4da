"""Reading a downloaded SA-1B back, sample by sample, to train on (:mod:`~sa1b.data.loader`)."""
