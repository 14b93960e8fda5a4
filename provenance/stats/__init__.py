"""Null models and p-values: rank statistics, permutation nulls, combination of dependent p-values."""
