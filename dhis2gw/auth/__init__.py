"""Authentication: argon2 passwords, JWT sessions, API tokens, the request Authenticator, throttling.

``dhis2gw.auth.sessions.build_auth`` wires it all for the composition root.
"""
