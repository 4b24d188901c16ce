"""The ``haiper-sync`` command line."""
