"""Training: the loop, learning-rate schedule, checkpoints, distributed data parallelism."""
