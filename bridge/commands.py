"""Subcommands beyond circuit/spec, registered on the shared parser (verify, run, compile, check, equiv, ...)."""
from __future__ import annotations


def register(sub) -> None:
    from bridge import audit, bench, certify, checking, execution, export, training
    from bridge.verify import add_verify_arguments, run_verify

    p = sub.add_parser("verify", help="prove a spec or netlist (same as python -m bridge.verify)")
    add_verify_arguments(p)
    p.set_defaults(func=run_verify)
    execution.register(sub)
    checking.register(sub)
    training.register(sub)
    audit.register(sub)
    certify.register(sub)
    export.register(sub)
    bench.register(sub)
