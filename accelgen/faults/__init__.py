"""Soft-error campaigns (``accelgen faults``): flip sites of an emitted block, single-event
upsets injected in its Verilator simulation, outcomes classified against the fault-free run
and the golden model. Blocks are reached only through the registry."""
