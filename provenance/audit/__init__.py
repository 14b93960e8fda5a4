"""Batch audits: many models fingerprinted once, every pair screened, a lineage map, resumable."""
