"""Stage 2's parts: the GA seeded for the job (seeding), what Ultralytics does with each hyperparameter
(hyperparameters), the trial (trainable), Tune I/O (tune_io), progress, and the result tables (tables).
The stage itself is ray_app/stages/search.py."""
