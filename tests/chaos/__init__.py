"""Proof under fire: an independent oracle, a scenario generator, and faults against the whole stack."""
