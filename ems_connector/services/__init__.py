"""Use cases, one module per aggregate; each write is one unit of work."""
