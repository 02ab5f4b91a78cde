"""Helpers of net/core/filter.c (filled in below)."""
