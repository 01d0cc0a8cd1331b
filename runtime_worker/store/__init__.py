"""Store implementations behind one boundary."""
