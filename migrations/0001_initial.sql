-- dhis2gw initial schema. PostgreSQL is the record; Redis only carries ids.
-- All timestamps are timestamptz (the original's naive timestamps made purge and display ambiguous).

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    uid             char(11) NOT NULL UNIQUE CHECK (uid ~ '^[a-zA-Z][a-zA-Z0-9]{10}$'),
    username        text NOT NULL CHECK (length(username) BETWEEN 1 AND 150),
    email           text,
    full_name       text,
    telephone       text,
    role            text NOT NULL CHECK (role IN ('admin', 'operator', 'submitter')),
    source_name     text,
    password_hash   text NOT NULL,
    is_active       boolean NOT NULL DEFAULT true,
    -- bumped on password change / deactivation: tokens issued before carry the old epoch
    token_epoch     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE api_tokens (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users(id),
    token_hash      text NOT NULL UNIQUE,           -- SHA-256 of the random token; the token itself is never stored
    prefix          text NOT NULL,                  -- first characters, to recognise a token in the UI
    description     text,
    is_active       boolean NOT NULL DEFAULT true,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE refresh_tokens (
    jti             text PRIMARY KEY,
    family          text NOT NULL,
    user_id         bigint NOT NULL REFERENCES users(id),
    issued_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    spent_at        timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE submissions (
    id               bigserial PRIMARY KEY,
    uid              char(11) NOT NULL UNIQUE,
    kind             text NOT NULL,
    destination      text NOT NULL,
    submitter_id     bigint REFERENCES users(id),
    endpoint         text NOT NULL,
    idempotency_key  text,
    request_hash     text,                -- SHA-256 of the canonical request body (Idempotency-Key conflicts)
    payload          jsonb NOT NULL,
    dhis2_payload    jsonb,
    import_params    jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'processing', 'delivered', 'partial', 'rejected', 'retrying', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,   -- every attempt made
    job_failures     integer NOT NULL DEFAULT 0,   -- attempts that spent a retry (DHIS2 outages never do)
    lease_owner      text,                         -- token of the attempt allowed to record an outcome
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    finished_at      timestamptz,
    http_status      integer,
    response         jsonb,
    import_count     jsonb,
    conflicts        jsonb,
    error            text,
    dhis2_job_id     text,                -- async DHIS2 job being polled (tracker)
    value_count      integer NOT NULL DEFAULT 0,
    request_id       text
);
CREATE UNIQUE INDEX submissions_idempotency ON submissions (submitter_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX submissions_created ON submissions (created_at DESC, id DESC);
CREATE INDEX submissions_status_created ON submissions (status, created_at DESC, id DESC);
CREATE INDEX submissions_submitter_created ON submissions (submitter_id, created_at DESC, id DESC);
CREATE INDEX submissions_kind_created ON submissions (kind, created_at DESC, id DESC);
CREATE INDEX submissions_endpoint_created ON submissions (endpoint, created_at DESC, id DESC);
CREATE INDEX submissions_destination_status ON submissions (destination, status);
-- the reconciler scans only the non-final rows
CREATE INDEX submissions_pending ON submissions (status, next_attempt_at)
    WHERE status IN ('queued', 'processing', 'retrying');

CREATE TABLE submission_events (
    id              bigserial PRIMARY KEY,
    submission_id   bigint NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT now(),
    event           text NOT NULL,
    status          text,
    attempt         integer,
    destination     text,
    http_status     integer,
    duration_ms     integer,
    detail          text,
    actor           text
);
CREATE INDEX submission_events_submission ON submission_events (submission_id, id);

CREATE TABLE request_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    request_id      text,
    method          text NOT NULL,
    endpoint        text NOT NULL,      -- the route template, e.g. /api/v2/users/<uid>
    path            text NOT NULL,
    user_id         bigint,
    username        text,
    status          integer NOT NULL,
    duration_ms     real NOT NULL,
    remote_addr     text,
    body_size       integer,
    error_code      text,
    body_excerpt    text
);
CREATE INDEX request_log_at ON request_log (at DESC, id DESC);
CREATE INDEX request_log_user_at ON request_log (user_id, at DESC);
CREATE INDEX request_log_endpoint_at ON request_log (endpoint, at DESC);
CREATE INDEX request_log_status_at ON request_log (status, at DESC);

-- The original's 13 columns, so existing mapping sheets import unchanged.
CREATE TABLE dhis2_mappings (
    id                      bigserial PRIMARY KEY,
    uid                     char(11) NOT NULL UNIQUE,
    code                    text NOT NULL,
    what                    text NOT NULL DEFAULT 'de',       -- de | ou | co (category option)
    name                    text NOT NULL DEFAULT '',
    description             text NOT NULL DEFAULT '',
    dataset                 text NOT NULL DEFAULT '',
    dataelement             text NOT NULL DEFAULT '',
    category_option_combo   text NOT NULL DEFAULT '',
    category_option         text NOT NULL DEFAULT '',
    category_combo          text NOT NULL DEFAULT '',
    instance_name           text NOT NULL DEFAULT '',
    source_name             text NOT NULL DEFAULT '',
    source_orgunit          text NOT NULL DEFAULT '',
    destination_orgunit     text NOT NULL DEFAULT '',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (code, source_name, instance_name, what)
);
CREATE INDEX dhis2_mappings_lookup ON dhis2_mappings (source_name, instance_name, what);
CREATE INDEX dhis2_mappings_dataelement ON dhis2_mappings (dataelement);
CREATE INDEX dhis2_mappings_dataset ON dhis2_mappings (dataset);

CREATE TABLE organisation_unit_levels (
    uid         char(11) PRIMARY KEY,
    level       integer NOT NULL UNIQUE,
    name        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organisation_units (
    uid             char(11) PRIMARY KEY,
    code            text,
    name            text NOT NULL,
    short_name      text,
    level           integer NOT NULL,
    path            text NOT NULL,
    parent_uid      char(11),
    opening_date    date,
    closed_date     date,
    attributes      jsonb NOT NULL DEFAULT '[]'::jsonb,
    dhis2_last_updated timestamptz,
    gone_from_dhis2 boolean NOT NULL DEFAULT false,
    content_hash    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organisation_units_level ON organisation_units (level);
CREATE INDEX organisation_units_parent ON organisation_units (parent_uid);
CREATE INDEX organisation_units_path ON organisation_units (path text_pattern_ops);
CREATE INDEX organisation_units_code ON organisation_units (code);

CREATE TABLE organisation_unit_groups (
    uid         char(11) PRIMARY KEY,
    code        text,
    name        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organisation_unit_group_members (
    group_uid   char(11) NOT NULL REFERENCES organisation_unit_groups(uid) ON DELETE CASCADE,
    unit_uid    char(11) NOT NULL,
    PRIMARY KEY (group_uid, unit_uid)
);

CREATE TABLE orgunit_propagation (
    server          text NOT NULL,
    unit_uid        char(11) NOT NULL,
    operation       text NOT NULL,           -- create | update | group
    content_hash    text,
    submission_id   bigint REFERENCES submissions(id) ON DELETE SET NULL,
    status          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server, unit_uid, operation)
);

CREATE TABLE uid_map (
    source_system   text NOT NULL,
    source_id       text NOT NULL,
    object_type     text NOT NULL,
    uid             char(11) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_system, source_id, object_type)
);

CREATE TABLE cron_runs (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text,
    detail      jsonb,
    host        text
);
CREATE INDEX cron_runs_job ON cron_runs (job, started_at DESC);

CREATE TABLE metadata_cache (
    destination text NOT NULL,
    kind        text NOT NULL,
    key         text NOT NULL,
    body        jsonb NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, kind, key)
);
