"""Durable state in a real database (SQLite by default, PostgreSQL for several processes).

- :mod:`gateway.store.url`: ``CALLGUARD_DATABASE_URL``, its default file, masking;
- :mod:`gateway.store.database`: the engine, transactions, errors and metrics;
- :mod:`gateway.store.migrations`: versioned schema steps applied at start;
- :mod:`gateway.store.tables`: the tables as this version uses them;
- one repository module per table: :mod:`gateway.store.approved`.

Redis keeps only what may be lost (fan-out, cache, locks); what must survive a restart is here.
Nothing is imported here, so that the settings can check a URL without loading SQLAlchemy.
"""
