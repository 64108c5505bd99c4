"""The HTTP API: Klein routes under /api/v2 plus the unversioned operational endpoints."""
