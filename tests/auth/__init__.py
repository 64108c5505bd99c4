"""Users, authentication, roles and the request log."""
