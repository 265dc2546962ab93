"""Serving trained models: one request answered, a retriever with an optional FAISS index, the
two-stage pipeline, explanations, and embedding maps."""
