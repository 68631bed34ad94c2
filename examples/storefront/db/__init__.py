"""The storefront's relational database: engine and sessions, tables, migrations."""
