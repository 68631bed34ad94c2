"""The "Deploy this architecture" AWS CDK app: the storefront's topology as code.

One stack per layer (see :mod:`infrastructure.stacks`), configured per environment by
:mod:`infrastructure.settings`, with the runtime names and settings taken from
:mod:`storefront.topology` (:mod:`infrastructure.runtime`). ``app.py`` in this folder is the
entry point ``cdk`` runs (``cdk.json``); the tests synthesize the same app in process.
"""
