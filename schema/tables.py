"""Imports every table module so the metadata is complete for migrations and tests."""
