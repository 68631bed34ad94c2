"""``python -m infrastructure`` runs the CDK app (the same as ``app.py``)."""

from infrastructure.app import main

main()
