"""The storefront: the executable examples that stand in for the NestJS services.

Each module is one integration of the architecture, written as production code would be (typed,
configured from the environment, tested against real servers): see the technology pages' *In the
examples* sections, and ``tests/storefront/`` for the tests that run each module.
"""
