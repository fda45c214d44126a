"""Static counts read off the lowered IR (bytes per memory edge, MACs, L1 footprint)."""
