"""Tests of the ops surface."""
