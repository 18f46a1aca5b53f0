"""What a person reads after a run: figures, tables, the matrix table, the few headline lines."""
