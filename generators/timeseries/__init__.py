"""Sequence generators: learn many series (or one long one) and sample new ones."""
