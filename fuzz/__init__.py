"""Fuzzing harnesses (atheris, with a plain-Python fallback) and their shared generators.

``python fuzz/decoders.py -max_total_time=30`` and ``python fuzz/core_inputs.py …`` run
them; docs/protocol.md ("Fuzzing") says what each covers and how to run them longer."""
