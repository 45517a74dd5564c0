"""Weights and execution: the construction (numpy), finite-precision arithmetic (numpy), the torch decoder.
Never imports z3."""
