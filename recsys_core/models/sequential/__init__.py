"""The sequential models: they read a history in order and predict the next item."""
