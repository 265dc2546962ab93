"""The general models: they score a user against the whole catalogue from the interaction matrix."""
