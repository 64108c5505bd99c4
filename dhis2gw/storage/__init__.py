"""Everything that talks SQL: the pool, migrations and one store class per domain."""
