"""Parsing: the spec language and netlists (.bench, .aag) into a frozen-dataclass IR. Imports neither torch nor z3."""
