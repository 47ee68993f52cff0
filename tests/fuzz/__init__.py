"""Property-based fuzzing of the whole GraphQL schema (discovered from introspection)."""
