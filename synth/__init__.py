"""Synthesis, place-and-route and timing-constraint flows."""
