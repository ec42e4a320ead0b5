"""Bringup package: ships launch/ and config/."""
