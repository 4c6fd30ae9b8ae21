"""The kinds of data synthwatch learns (no imports: the registry and the CLI read this cheaply)."""

KINDS = ("tabular", "timeseries", "image")
