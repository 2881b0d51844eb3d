"""Shipped demo data: a speech sequence and a small trained MLP (see make_speech.py)."""
