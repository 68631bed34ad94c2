"""The test harness: throwaway real servers (PostgreSQL, Redis, moto) for the test suite."""
