"""LLM providers behind one boundary."""
