"""Admission: the one rule set that decides whether a key may spend on a model."""
