"""Fermi-sea / Fermi-surface reductions of geometry fields into response tensors."""
