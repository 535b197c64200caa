"""HTTP controllers, one module per feature."""
