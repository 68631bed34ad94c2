"""Fixtures of the scenario tests (defined in :mod:`tests.scenarios.shop`)."""

from tests.scenarios.shop import storefront

__all__ = ["storefront"]
