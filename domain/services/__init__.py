"""The use cases: one module per area. Each takes `Ports` (domain/ports.py) and plain values,
and returns domain values or raises `DomainError`. GraphQL, REST, the CLI and the workers all
call these; none of them holds a rule of its own (docs/ARCHITECTURE.md)."""
