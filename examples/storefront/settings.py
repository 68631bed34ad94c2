"""Configuration from the environment, and nothing hard-coded.

Every endpoint, region, name and credential comes from environment variables, so the same code runs
against the test harness (moto server, throwaway PostgreSQL and Redis), LocalStack or a real AWS
account. AWS endpoints and credentials use the AWS SDK's own variables (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...), which boto3 reads itself;
the storefront's own settings use the ``STOREFRONT_`` prefix.

Examples:
    >>> settings = Settings(cognito_user_pool_id="eu-west-1_Example", aws_region="eu-west-1")
    >>> settings.issuer
    'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example'
    >>> settings.jwks_url
    'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example/.well-known/jwks.json'
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The storefront's settings (environment variables with the ``STOREFRONT_`` prefix).

    Attributes:
        service_name: The service's name in logs, traces and metrics.
        aws_region: The AWS Region for every client (``AWS_REGION`` or ``AWS_DEFAULT_REGION``
            are used by boto3 when this is unset).
        database_url: SQLAlchemy URL of the service's PostgreSQL database.
        redis_url: URL of the Redis (ElastiCache) endpoint; ``rediss://`` for TLS.
        documents_url: URL of the event store: ``mongodb://`` for DocumentDB or MongoDB, or
            ``mongomock://`` for the in-memory stand-in used where no server is available.
        cognito_user_pool_id: The user pool whose tokens the service accepts.
        cognito_client_ids: The app clients whose tokens the service accepts.
        cognito_issuer: The expected ``iss``; defaults to the Cognito URL built from the Region
            and pool id.
        cognito_jwks_url: Where to fetch the signing keys; defaults to
            ``<issuer>/.well-known/jwks.json``. Separate from the issuer because emulators serve
            the keys on their own address.
        event_bus_name: The EventBridge bus that domain events are published to.
        resource_prefix: Prefix of every AWS resource name (one per environment).
        trusted_proxy_ranges_file: File with Cloudflare's published IP ranges, one CIDR per line.
        otlp_endpoint: OTLP/HTTP endpoint of the OpenTelemetry Collector; unset means telemetry is
            kept in process (tests) rather than exported.
        log_level: The minimum level written.
    """

    model_config = SettingsConfigDict(env_prefix="STOREFRONT_", extra="ignore", frozen=True)

    service_name: str = "storefront"
    aws_region: str | None = Field(default=None, validation_alias="AWS_REGION")
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/storefront"
    redis_url: str = "redis://127.0.0.1:6379/0"
    documents_url: str = "mongomock://localhost/storefront"
    cognito_user_pool_id: str = ""
    cognito_client_ids: list[str] = Field(default_factory=list)
    cognito_issuer: str | None = None
    cognito_jwks_url: str | None = None
    event_bus_name: str = "storefront-events"
    resource_prefix: str = "storefront"
    trusted_proxy_ranges_file: str | None = None
    otlp_endpoint: str | None = None
    log_level: str = "INFO"
    database_password: SecretStr | None = None

    @property
    def region(self) -> str:
        """The Region in use: the setting, else the AWS SDK's, else ``eu-west-1``."""
        import os

        return self.aws_region or os.environ.get("AWS_DEFAULT_REGION") or "eu-west-1"

    @property
    def issuer(self) -> str:
        """The ``iss`` claim the service accepts."""
        return (
            self.cognito_issuer
            or f"https://cognito-idp.{self.region}.amazonaws.com/{self.cognito_user_pool_id}"
        )

    @property
    def jwks_url(self) -> str:
        """Where the user pool's public signing keys are fetched from."""
        return self.cognito_jwks_url or f"{self.issuer}/.well-known/jwks.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (FastAPI dependency; tests override it)."""
    return Settings()
