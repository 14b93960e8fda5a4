"""Activation evidence: run both models on the same probe texts and correlate what they compute."""
