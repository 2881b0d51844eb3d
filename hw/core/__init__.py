"""The datapath components every layer kind shares.

``iobuffer`` (double-banked activations) -> ``quantizer`` (centroid lookup) ->
``change_detector`` (previous cluster indices; changed inputs out, one per cycle) -> a layer
kind's address generator (:mod:`reuse_accel.hw.layers`) -> ``mac`` (delta multiply-accumulate,
then the ``activation`` readout into the I/O buffer). Hardware generated without reuse replaces
the quantizer and change detector by the ``serializer``.

Every component states its latency as a class attribute; :mod:`reuse_accel.sim.timing`
composes the cycle formula from them.
"""
