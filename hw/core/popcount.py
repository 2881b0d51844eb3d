"""Population count as a balanced adder tree."""

__all__ = ["popcount"]


def popcount(bits):
    """Number of set bits of a value, as a balanced adder tree (log depth)."""
    terms = [bits[n] for n in range(len(bits))]
    while len(terms) > 1:
        paired = [terms[n] + terms[n + 1] for n in range(0, len(terms) - 1, 2)]
        terms = paired + terms[len(paired) * 2:]
    return terms[0]
