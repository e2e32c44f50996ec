"""Exercise definitions, one module per chapter (imported automatically by the registry)."""
