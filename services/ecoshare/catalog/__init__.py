"""The event catalog: versioned Avro schemas, their registration, and the AsyncAPI document."""
