"""Image generators; import them through `generators.registry` (lazy) or directly from their modules."""
