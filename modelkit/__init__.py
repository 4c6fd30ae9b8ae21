"""What generators and detectors share: typed errors, the saved-model envelope and hyperparameter introspection.

Pure and small: imports numpy only (safetensors and torch where a function needs them), never `generators`,
`detectors` or `flows`, so both libraries can build on it without importing each other.
"""
