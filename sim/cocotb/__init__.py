"""The generated Verilog in Verilator or Icarus Verilog, driven by cocotb.

:mod:`.transport` builds and runs the simulation behind the driver's transport interface;
:mod:`.bench` is the cocotb testbench the simulator loads (kept free of imports beyond cocotb
and the standard library, so the simulator's Python starts fast).
"""
