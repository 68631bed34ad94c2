"""Fixtures of the proof tests (the platform from :mod:`tests.scenarios.shop`)."""

from tests.scenarios.shop import storefront

__all__ = ["storefront"]
