# Bootstrap the runtime resources against a moto server on 127.0.0.1:5000 (shown on docs/run/index.md;
# tests/storefront/test_bootstrap.py runs this exact text against the test session's moto server).
AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_DEFAULT_REGION=eu-west-1 .venv/bin/python -m storefront.bootstrap --without-deny-statements
