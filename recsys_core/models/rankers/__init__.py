"""The feature-interaction rankers: they score (user, item, context) rows, alone or over a
retriever's candidates."""
