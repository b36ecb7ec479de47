"""Several instances on one PostgreSQL (docs/scale-out.md): the schema, the store, the lease keeper,
the control listener and the journal shipper. Imported only with store.backend = "postgresql"."""
