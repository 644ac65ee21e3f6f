"""Wire Structs per resource: camelCase, unknown fields refused on requests."""
