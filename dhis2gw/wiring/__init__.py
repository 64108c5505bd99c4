"""The composition root: builds the gateway's service tree in one explicit order."""
