"""haiper-sync core: API client, models, normalization, DuckDB store. Never imports Prefect."""

__version__ = "0.1.0"
