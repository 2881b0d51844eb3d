"""Golden model of the reuse accelerator."""
