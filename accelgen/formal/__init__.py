"""Formal proofs of the blocks' properties (``accelgen prove``): the proof harness around a
registry block and the SymbiYosys flow. Blocks are reached only through the registry."""
