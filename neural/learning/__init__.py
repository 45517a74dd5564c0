"""The learning experiments: the four tasks (and ``prompt_space``: every prompt of one at a size, in a canonical
order, for ``certify``), training (alone or as a group), scoring, and the paper's grid, run here
or as Slurm job arrays (``slurm``, through the optional submitit; ``interrupt`` is how a scheduler's warning stops
training at a step boundary). Reaches the construction only through ``neural.construction.execute``'s decoding
(tests/test_architecture.py)."""
