"""The learning experiments: the four tasks, training (alone or as a group), scoring, and the paper's grid. Reaches
the construction only through ``neural.construction.execute``'s decoding (tests/test_architecture.py)."""
