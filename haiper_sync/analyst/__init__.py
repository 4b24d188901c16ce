"""Reading the DuckDB file for people: queries, the status report, exports, rendering."""
