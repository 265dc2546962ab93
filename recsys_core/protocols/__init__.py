"""Evaluation protocols: the top-K protocol (leave-last-out), the explicit-label protocol for
rankers, and paired comparisons with a simulated A/B test."""
