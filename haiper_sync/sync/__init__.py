"""One sync, stage by stage: plan the manifest, fetch each chunk, normalize it into rows.

Imports api/ (to fetch) and store/ (to plan against what is stored); nothing imports it but the
Prefect layer.
"""
