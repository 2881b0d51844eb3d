"""Models of the reuse accelerator: the golden model (:mod:`.model`, :mod:`.timing`) and the
simulator harnesses behind the driver's transport interface (:mod:`.amaranth`, :mod:`.cocotb`,
:mod:`.pty`)."""
