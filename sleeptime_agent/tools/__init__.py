"""LangChain tools the agents call: memory edits and archival notes."""
