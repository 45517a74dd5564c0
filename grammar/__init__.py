"""Parsing: the spec language and netlists into one frozen-dataclass IR (``grammar.ir``), and what needs nothing
more than the IR: normalisation to two-input gates, reference evaluation and trace checking, the input limits.

Netlists: ISCAS ``.bench``, ASCII and binary AIGER (``.aag``, ``.aig``), BLIF (``.blif``) and structural Verilog
(``.v``), read by Lark grammars (``*.lark`` beside these modules) or, for binary AIGER, by a byte-level reader;
``grammar.netlist`` picks the reader by extension or ``--format``. Every error is an ``InputError`` at
file:line:column. Imports neither torch nor z3, and nothing from the other packages.
"""
