"""The proved construction: the typed contract formal proves, the weights that fill it, the F(e,s) arithmetic and
decoding in any arithmetic. Never imports the learning half (tests/test_architecture.py)."""
