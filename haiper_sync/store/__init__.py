"""The DuckDB file: connections that wait politely, migrations, bulk writes, the runs table,
chunks set aside while an analyst holds the file, and the one-sync-per-file lock.

Never imports api/ or sync/: it stores the row types of ``haiper_sync.rows`` and no more.
"""
