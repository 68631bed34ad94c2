"""``app.py``, the entry point ``cdk synth`` runs, synthesizes every stack offline.

No AWS credentials, account or Region are set: the templates are account-agnostic, in the
default Region, exactly what ``cdk synth`` produces from a fresh clone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infrastructure.inventory import cdk_context
from infrastructure.stacks import LAYERS

APP = Path(__file__).resolve().parents[2] / "examples" / "infrastructure" / "app.py"


def test_app_py_synthesizes_every_stack_without_aws_credentials(tmp_path: Path) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))
    }
    # What the CDK CLI passes: cdk.json's context plus the -c options.
    environment["CDK_CONTEXT_JSON"] = json.dumps(cdk_context() | {"env": "prod"})
    environment["CDK_OUTDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(APP)],
        cwd=APP.parent,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    templates = sorted(p.name for p in tmp_path.glob("*.template.json"))
    assert templates == sorted(f"storefront-prod-{layer}.template.json" for layer in LAYERS)
    network = json.loads((tmp_path / "storefront-prod-network.template.json").read_text())
    assert network["Resources"], "empty template"
