"""Training: the loop, devices, one model run as named steps, scheduling of several models, the
worker pool, background jobs and the hyperparameter forms."""
