"""Proofs that the storefront holds against generated and hostile input (issue 10)."""
