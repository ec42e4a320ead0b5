"""msgs layer."""
