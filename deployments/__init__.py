"""Helpers around the deployments in ``prefect.yaml`` (the single source of their settings)."""
