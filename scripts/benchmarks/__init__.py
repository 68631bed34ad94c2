"""Benchmarks of the storefront's read and write paths and of the docs build.

Run them with ``scripts/benchmark.sh`` (``--quick`` for a smoke run). Each benchmark is one
module (:mod:`.catalog_read`, :mod:`.write_path`, :mod:`.docs_build`); the HTTP load comes from
:mod:`.loadgen`, run as a separate process; :mod:`.results` is the schema of the JSON they write
(``docs/data/benchmarks.json``), which the docs build renders into the Performance page.
"""
