"""Results leave the box here: the on-disk spool, the MQTT link, and the payload schemas."""
