"""What client and server share: the session schema, the wire events, and the helpers to validate and merge them."""
