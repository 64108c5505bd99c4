-- Org-unit hierarchy sync, propagation to CC servers and the cron run log (issue 10).

-- How a unit entered the local copy and how often its propagated fields changed:
--   baseline  true when it arrived with the first (full) sync, so it is not "new" for create servers;
--   revision  1 on insert, +1 whenever the fields sent to CC servers change ("changed" for update servers);
--   gone_at   when it disappeared from the synced tree (gone_from_dhis2 = true; rows are never deleted).
ALTER TABLE organisation_units ADD COLUMN baseline boolean NOT NULL DEFAULT false;
ALTER TABLE organisation_units ADD COLUMN revision integer NOT NULL DEFAULT 1;
ALTER TABLE organisation_units ADD COLUMN gone_at timestamptz;
CREATE INDEX organisation_units_name_lower ON organisation_units (lower(name) text_pattern_ops);

CREATE INDEX organisation_unit_group_members_unit ON organisation_unit_group_members (unit_uid);

-- One row per synced source (today only 'main'): the scope it was synced with and the
-- lastUpdated watermark of the next incremental read.
CREATE TABLE orgunit_sync_state (
    name            text PRIMARY KEY,
    scope           jsonb NOT NULL,
    watermark       text,
    full_synced_at  timestamptz,
    last_run_at     timestamptz
);

CREATE INDEX orgunit_propagation_submission ON orgunit_propagation (submission_id);

-- A scheduled execution is claimed by inserting its row: the unique (job, scheduled_for) makes
-- each schedule run once across every gateway process sharing this database.
ALTER TABLE cron_runs ADD COLUMN scheduled_for timestamptz;
CREATE UNIQUE INDEX cron_runs_occurrence ON cron_runs (job, scheduled_for) WHERE scheduled_for IS NOT NULL;
CREATE INDEX cron_runs_unfinished ON cron_runs (job) WHERE finished_at IS NULL;
