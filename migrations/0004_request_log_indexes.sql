-- The request log is written on every API call: keep its indexes few. Filters by endpoint and
-- status are bounded by a time range and use request_log_at; by user, request_log_user_at.
DROP INDEX IF EXISTS request_log_endpoint_at;
DROP INDEX IF EXISTS request_log_status_at;
