-- Operations API (issue 8): requeue jobs, and indexes for the /logs filters and free-text search.

-- A requeue by filter can move tens of thousands of rows; it runs as a job whose progress any
-- gateway process can report (GET /api/v2/logs/requeue/{job_id}).
CREATE TABLE requeue_jobs (
    id           text PRIMARY KEY,
    actor        text NOT NULL,
    selection    jsonb NOT NULL,          -- {"ids": [...]} or {"filter": {...}}
    force        boolean NOT NULL DEFAULT false,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    matched      integer NOT NULL DEFAULT 0,
    scanned      integer NOT NULL DEFAULT 0,
    requeued     integer NOT NULL DEFAULT 0,
    enqueued     integer NOT NULL DEFAULT 0,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX requeue_jobs_created ON requeue_jobs (created_at DESC);

-- /logs?destination=… newest first (0001 only had (destination, status)).
CREATE INDEX submissions_destination_created ON submissions (destination, created_at DESC, id DESC);
-- /logs?q=<idempotency key>
CREATE INDEX submissions_idempotency_key ON submissions (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- /logs?q=<words of an error>: a trigram index when the server ships pg_trgm (contrib). Without it
-- the search still works, only slower; an embedded PostgreSQL without contrib must still migrate.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXECUTE 'CREATE INDEX submissions_error_trgm ON submissions USING gin (error gin_trgm_ops)';
        EXCEPTION WHEN insufficient_privilege OR feature_not_supported OR undefined_file THEN
            RAISE NOTICE 'pg_trgm unavailable (%); /logs?q= on errors will scan', SQLERRM;
        END;
    END IF;
END
$$;
