-- The original Go dhis2gw's schema, migrations 000001–000007, written from the column lists of
-- shared/reference/original-dhis2gw.md §5 (the Go repository's SQL files are not at hand).
-- Each migration starts at a "-- migration NNNNNN" line so a test can stop at any of them.
-- Differences from the real files, none of which the import reads:
-- * no PostGIS / xml2 (organisationunit.geometry is TEXT here); pgcrypto only, for the seed admin;
-- * the SQL functions (cronexp, generate_uid's exact alphabet, triggers) are reduced to generate_uid;
-- * which migration created dhis2_mappings is not in the reference: it is 000001 here, and
--   000004 (whose down migration is a no-op) adds its indexes.

-- migration 000001
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE FUNCTION generate_uid() RETURNS text LANGUAGE sql AS $$
    SELECT substr('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', 1 + floor(random() * 52)::int, 1)
        || string_agg(substr('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
                             1 + floor(random() * 62)::int, 1), '')
    FROM generate_series(1, 10)
$$;

CREATE TABLE user_roles (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created     TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated     TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE user_role_permissions (
    id          BIGSERIAL PRIMARY KEY,
    user_role   BIGINT NOT NULL REFERENCES user_roles(id) ON DELETE CASCADE ON UPDATE CASCADE,
    sys_module  TEXT NOT NULL,
    sys_perms   VARCHAR(16) NOT NULL,
    created     TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated     TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (sys_module, user_role)
);
CREATE TABLE users (
    id                BIGSERIAL PRIMARY KEY,
    uid               TEXT NOT NULL DEFAULT '',
    user_role         BIGINT NOT NULL REFERENCES user_roles(id) ON DELETE RESTRICT ON UPDATE CASCADE,
    username          TEXT NOT NULL UNIQUE,
    password          TEXT NOT NULL,
    onetime_password  TEXT NOT NULL DEFAULT '',
    firstname         TEXT NOT NULL,
    lastname          TEXT NOT NULL,
    telephone         TEXT NOT NULL DEFAULT '',
    email             TEXT,
    is_active         BOOLEAN NOT NULL DEFAULT 't',
    is_admin_user     BOOLEAN NOT NULL DEFAULT 'f',
    failed_attempts   TEXT DEFAULT '0/' || to_char(NOW(), 'YYYYmmdd'),
    transaction_limit TEXT DEFAULT '0/' || to_char(NOW(), 'YYYYmmdd'),
    last_login        TIMESTAMPTZ,
    created           TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated           TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX users_username_idx ON users (username);
CREATE TABLE user_apitoken (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token       TEXT NOT NULL DEFAULT '',
    is_active   BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at  TIMESTAMPTZ NULL,
    created     TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated     TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE servers (
    id                      SERIAL PRIMARY KEY,
    uid                     TEXT NOT NULL DEFAULT '',
    name                    TEXT NOT NULL UNIQUE,
    username                TEXT NOT NULL DEFAULT '',
    password                TEXT NOT NULL DEFAULT '',
    ipaddress               TEXT NOT NULL DEFAULT '',
    url                     TEXT NOT NULL DEFAULT '',
    callback_url            TEXT NOT NULL DEFAULT '',
    cc_urls                 TEXT[] DEFAULT ARRAY[]::TEXT[],
    auth_method             TEXT NOT NULL DEFAULT '',
    auth_token              TEXT NOT NULL DEFAULT '',
    allow_callbacks         BOOLEAN NOT NULL DEFAULT 'f',
    allow_copies            BOOLEAN NOT NULL DEFAULT 'f',
    use_async               BOOLEAN NOT NULL DEFAULT 'f',
    use_ssl                 BOOLEAN NOT NULL DEFAULT 'f',
    parse_responses         BOOLEAN NOT NULL DEFAULT 't',
    ssl_client_certkey_file TEXT NOT NULL DEFAULT '',
    start_submission_period INTEGER NOT NULL DEFAULT 0,
    end_submission_period   INTEGER NOT NULL DEFAULT 24,
    xml_response_xpath      TEXT NOT NULL DEFAULT '',
    json_response_xpath     TEXT NOT NULL DEFAULT '',
    suspended               BOOLEAN NOT NULL DEFAULT 'f',
    system_type             TEXT NOT NULL DEFAULT '',
    endpoint_type           TEXT NOT NULL DEFAULT '',
    http_method             TEXT NOT NULL DEFAULT 'POST',
    url_params              JSONB DEFAULT '{}'::jsonb,
    created                 TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated                 TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX servers_name ON servers (name);
CREATE INDEX servers_uid ON servers (uid);
CREATE INDEX servers_created ON servers (created);
CREATE TABLE server_allowed_sources (
    id              SERIAL PRIMARY KEY,
    server_id       INTEGER NOT NULL UNIQUE REFERENCES servers(id),
    allowed_sources INTEGER[] DEFAULT ARRAY[]::INTEGER[]
);
CREATE TABLE requests (
    id                 BIGSERIAL PRIMARY KEY,
    uid                VARCHAR(11) NOT NULL DEFAULT generate_uid(),
    batchid            TEXT NOT NULL DEFAULT '',
    depends_on         BIGINT REFERENCES requests(id),
    source             INTEGER REFERENCES servers(id),
    destination        INTEGER REFERENCES servers(id),
    cc_servers         INTEGER[] DEFAULT ARRAY[]::INTEGER[],
    cc_servers_status  JSONB DEFAULT '{}'::jsonb,
    body               TEXT NOT NULL DEFAULT '',
    body_is_query_param BOOLEAN DEFAULT 'f',
    response           TEXT NOT NULL DEFAULT '',
    status             VARCHAR(32) NOT NULL DEFAULT 'ready'
                       CHECK (status IN ('pending', 'ready', 'inprogress', 'failed', 'error', 'expired', 'completed',
                                         'canceled')),
    statuscode         TEXT NOT NULL DEFAULT '',
    retries            INTEGER NOT NULL DEFAULT 0,
    errors             TEXT NOT NULL DEFAULT '',
    ctype              TEXT NOT NULL DEFAULT '',
    url_suffix         TEXT DEFAULT '',
    suspended          INTEGER NOT NULL DEFAULT 0,
    is_async           BOOLEAN DEFAULT 'f',
    async_jobid        TEXT DEFAULT '',
    submissionid       TEXT NOT NULL DEFAULT '',
    frequency_type     TEXT NOT NULL DEFAULT '',
    period             TEXT NOT NULL DEFAULT '',
    week               TEXT NOT NULL DEFAULT '',
    month              TEXT NOT NULL DEFAULT '',
    year               INTEGER,
    msisdn             TEXT NOT NULL DEFAULT '',
    raw_msg            TEXT NOT NULL DEFAULT '',
    facility           TEXT NOT NULL DEFAULT '',
    district           TEXT NOT NULL DEFAULT '',
    report_type        TEXT NOT NULL DEFAULT '',
    object_type        TEXT NOT NULL DEFAULT '',
    extras             TEXT NOT NULL DEFAULT '',
    created            TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated            TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE schedules (
    id               BIGSERIAL PRIMARY KEY,
    sched_type       TEXT CHECK (sched_type IN ('sms', 'contact_push', 'url', 'command', 'dhis2_async_job_check')),
    params           JSON,
    sched_url        TEXT NOT NULL DEFAULT '',
    sched_content    TEXT NOT NULL DEFAULT '',
    command          TEXT NOT NULL DEFAULT '',
    command_args     TEXT NOT NULL DEFAULT '',
    repeat           VARCHAR(16) NOT NULL DEFAULT 'never'
                     CHECK (repeat IN ('never', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'interval', 'cron')),
    repeat_interval  INTEGER,
    cron_expression  TEXT NOT NULL DEFAULT '',
    first_run_at     TIMESTAMPTZ,
    last_run_at      TIMESTAMPTZ,
    next_run_at      TIMESTAMPTZ,
    status           VARCHAR(16) NOT NULL DEFAULT 'ready'
                     CHECK (status IN ('ready', 'skipped', 'expired', 'canceled', 'sent', 'failed', 'error',
                                       'completed')),
    is_active        BOOLEAN NOT NULL DEFAULT 't',
    async_job_type   TEXT NOT NULL DEFAULT '',
    async_jobid      TEXT NOT NULL DEFAULT '',
    request_id       BIGINT REFERENCES requests(id),
    server_id        INTEGER REFERENCES servers(id),
    server_in_cc     BOOLEAN NOT NULL DEFAULT 'f',
    created_by       BIGINT REFERENCES users(id),
    created          TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated          TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE organisationunit (
    id              BIGSERIAL PRIMARY KEY,
    uid             TEXT NOT NULL UNIQUE,
    code            TEXT UNIQUE,
    name            TEXT NOT NULL,
    shortname       TEXT NOT NULL DEFAULT '',
    description     TEXT NOT NULL DEFAULT '',
    parentid        BIGINT REFERENCES organisationunit(id),
    hierarchylevel  INTEGER NOT NULL,
    path            TEXT NOT NULL UNIQUE,
    address         TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL DEFAULT '',
    url             TEXT NOT NULL DEFAULT '',
    phonenumber     TEXT NOT NULL DEFAULT '',
    extras          JSONB NOT NULL DEFAULT '{}'::jsonb,
    attributevalues JSONB DEFAULT '{}'::jsonb,
    mflid           TEXT NOT NULL DEFAULT '',
    mfluid          TEXT NOT NULL DEFAULT '',
    mflparent       TEXT NOT NULL DEFAULT '',
    openingdate     DATE,
    deleted         BOOLEAN NOT NULL DEFAULT 'f',
    geometry        TEXT,  -- geometry(Geometry,4326) in the original (PostGIS)
    lastsyncdate    TIMESTAMPTZ,
    created         TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated         TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE orgunitlevel (
    id    SERIAL PRIMARY KEY,
    uid   TEXT NOT NULL UNIQUE,
    name  TEXT NOT NULL UNIQUE,
    code  TEXT UNIQUE,
    level INTEGER NOT NULL UNIQUE
);
CREATE TABLE orgunitgroup (
    id        SERIAL PRIMARY KEY,
    uid       TEXT NOT NULL UNIQUE,
    code      TEXT UNIQUE,
    name      TEXT NOT NULL UNIQUE,
    shortname TEXT NOT NULL UNIQUE
);
CREATE TABLE orgunitgroupmembers (
    organisationunitid BIGINT REFERENCES organisationunit(id),
    orgunitgroupid     INTEGER REFERENCES orgunitgroup(id),
    UNIQUE (organisationunitid, orgunitgroupid)
);
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    logtype    VARCHAR(32) NOT NULL DEFAULT '',
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL DEFAULT '',
    remote_ip  INET,
    detail     TEXT NOT NULL,
    created_by BIGINT REFERENCES users(id),
    created    TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE blacklist (
    id      BIGSERIAL PRIMARY KEY,
    msisdn  TEXT NOT NULL UNIQUE,
    created TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE submission_log (
    id              SERIAL PRIMARY KEY,
    submitted_at    TIMESTAMP NOT NULL DEFAULT NOW(),
    payload         JSONB NOT NULL,
    status          VARCHAR(20) DEFAULT 'queued',
    retry_count     INT NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMP,
    task_id         VARCHAR(64),
    response        TEXT
);
CREATE INDEX idx_submission_log_status ON submission_log (status);
CREATE INDEX idx_submission_log_task_id ON submission_log (task_id);
CREATE INDEX idx_submission_log_submitted_at ON submission_log (submitted_at);
CREATE INDEX idx_submission_log_retry_count ON submission_log (retry_count);
CREATE INDEX idx_submission_log_last_attempt_at ON submission_log (last_attempt_at);
CREATE TABLE dhis2_mappings (
    id                    SERIAL PRIMARY KEY,
    uid                   TEXT NOT NULL DEFAULT generate_uid(),
    name                  TEXT NOT NULL,
    code                  TEXT NOT NULL DEFAULT '',
    description           TEXT NOT NULL DEFAULT '',
    dataset               TEXT NOT NULL DEFAULT '',
    dataelement           TEXT NOT NULL,
    category_option_combo TEXT NULL,
    dhis2_name            TEXT NOT NULL DEFAULT '',
    created               TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated               TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO user_roles (name, description) VALUES ('Administrator', 'For the Administrators'),
    ('SMS User', 'For SMS third party apps');
INSERT INTO user_role_permissions (user_role, sys_module, sys_perms)
    SELECT id, 'Users', 'rmad' FROM user_roles WHERE name = 'Administrator';
INSERT INTO users (firstname, lastname, username, password, email, user_role, is_admin_user)
    SELECT 'Samuel', 'Sekiwere', 'admin', crypt('@dm1n', gen_salt('bf')), 'sekiskylink@gmail.com', id, 't'
    FROM user_roles WHERE name = 'Administrator';
INSERT INTO servers (name, username, password, url, auth_method)
    VALUES ('localhost', 'tester', 'foobar', 'http://localhost:8080/test', 'Basic Auth');
INSERT INTO servers (name, username, password, url, auth_method, auth_token)
    VALUES ('dhis2', 'admin', 'district', 'http://localhost/api/dataValueSets', 'Token', 'd2pat_seededtoken0000000');
INSERT INTO server_allowed_sources (server_id, allowed_sources)
    SELECT s.id, ARRAY[l.id] FROM servers s, servers l WHERE s.name = 'dhis2' AND l.name = 'localhost';

-- migration 000002
ALTER TABLE submission_log ADD COLUMN errors TEXT;

-- migration 000003
ALTER TABLE submission_log ADD COLUMN dhis2_payload TEXT;

-- migration 000004
CREATE INDEX IF NOT EXISTS dhis2_mappings_name ON dhis2_mappings (name);
CREATE INDEX IF NOT EXISTS dhis2_mappings_uid ON dhis2_mappings (uid);
CREATE INDEX IF NOT EXISTS dhis2_mappings_code ON dhis2_mappings (code);
CREATE INDEX IF NOT EXISTS dhis2_mappings_dataset ON dhis2_mappings (dataset);
CREATE INDEX IF NOT EXISTS dhis2_mappings_dataelement ON dhis2_mappings (dataelement);

-- migration 000005
ALTER TABLE dhis2_mappings ADD COLUMN instance_name TEXT;
ALTER TABLE dhis2_mappings ADD COLUMN source_name TEXT;
UPDATE dhis2_mappings SET instance_name = 'default', source_name = 'default';
ALTER TABLE dhis2_mappings ALTER COLUMN instance_name SET NOT NULL;
ALTER TABLE dhis2_mappings ALTER COLUMN source_name SET NOT NULL;

-- migration 000006
ALTER TABLE dhis2_mappings ADD COLUMN what TEXT DEFAULT '';
ALTER TABLE dhis2_mappings ADD COLUMN source_orgunit TEXT DEFAULT '';
ALTER TABLE dhis2_mappings ADD COLUMN dest_orgunit TEXT DEFAULT '';
ALTER TABLE dhis2_mappings ADD COLUMN category_option TEXT DEFAULT '';
ALTER TABLE dhis2_mappings ADD COLUMN category_combo TEXT DEFAULT '';
ALTER TABLE dhis2_mappings ADD CONSTRAINT unique_code_source_instance_what
    UNIQUE (code, source_name, instance_name, what);
CREATE INDEX dhis2_mappings_what ON dhis2_mappings (what);
CREATE INDEX dhis2_mappings_source_orgunit ON dhis2_mappings (source_orgunit);
CREATE INDEX dhis2_mappings_dest_orgunit ON dhis2_mappings (dest_orgunit);

-- migration 000007
ALTER TABLE dhis2_mappings DROP COLUMN dhis2_name;
ALTER TABLE dhis2_mappings ADD COLUMN dimension_type TEXT DEFAULT 'none';
CREATE TABLE dhis2_mapping_dimension (
    id                    BIGSERIAL PRIMARY KEY,
    mapping_id            INTEGER NOT NULL REFERENCES dhis2_mappings(id) ON DELETE CASCADE,
    source_field          TEXT NOT NULL,
    source_label          TEXT,
    category_option       TEXT NOT NULL,
    category_option_combo TEXT NOT NULL,
    dhis2_name            TEXT,
    type                  TEXT DEFAULT 'attribution',
    dimension_group       TEXT,
    created               TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP,
    updated               TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX dhis2_mapping_dimension_mapping ON dhis2_mapping_dimension (mapping_id);
CREATE INDEX dhis2_mapping_dimension_type ON dhis2_mapping_dimension (type);
