"""One private ECR repository per service, scanned on push, with immutable tags (ECS page)."""

from __future__ import annotations

from infrastructure.services import SERVICES

from tests.infrastructure.synthesis import Synthesized


def test_each_service_has_an_immutable_scanned_repository(prod: Synthesized) -> None:
    repositories = prod.resources("registry", "AWS::ECR::Repository")
    names = sorted(r["Properties"]["RepositoryName"] for r in repositories.values())
    assert names == sorted(f"storefront-prod/{s.name}" for s in SERVICES)
    for repository in repositories.values():
        p = repository["Properties"]
        assert p["ImageTagMutability"] == "IMMUTABLE"
        assert p["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert p["EncryptionConfiguration"] == {"EncryptionType": "KMS"}
        assert repository["DeletionPolicy"] == "Retain"
