"""LangGraph graphs: the sleep-time edit loop and the paired chat graph."""
