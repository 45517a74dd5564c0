"""The command shells: parsing flags, printing, exit codes, over the engines of ``bridge`` and the three other
packages. ``main`` builds the ``cotproof`` parser; one module per group of commands: ``verifying`` (verify),
``running`` (run, compile), ``checking`` (check, equiv), ``circuits`` (circuit info/eval/convert), ``learning``
(train, eval, reproduce), ``auditing`` (audit), ``certifying`` (certify), ``exporting`` (export),
``benchmarking`` (bench); and what the shells share: ``flags`` (typed flag values, one parser per command,
renamed flags) and ``inputs`` (bit strings, vector files, overrides, writable directories). ``bridge.cli`` and
``bridge.verify`` are the two ``python -m`` entry points, kept at their old names."""
