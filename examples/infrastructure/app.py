"""The CDK app's entry point (``cdk.json`` runs it): ``cdk synth -c env=prod``."""

from __future__ import annotations

import sys
from pathlib import Path

# Importable from this folder without an installed package (``cdk`` runs ``python app.py``).
sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import aws_cdk as cdk  # noqa: E402

from infrastructure.settings import CONTEXT_KEYS, settings_from_context  # noqa: E402
from infrastructure.stacks import build  # noqa: E402


def main() -> None:
    """Synthesize every stack of the environment the context names."""
    app = cdk.App()
    context = {key: app.node.try_get_context(key) for key in CONTEXT_KEYS}
    build(app, settings_from_context(context))
    app.synth()


if __name__ == "__main__":
    main()
