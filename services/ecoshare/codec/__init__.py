"""Avro codec: Confluent wire framing, compiled field scanners and field encoders."""
