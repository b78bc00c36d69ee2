"""Tests of the portal surface."""
