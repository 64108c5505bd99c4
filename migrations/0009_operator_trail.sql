-- The operator's trail.
--
-- 1. Attempt numbers are per submission for its whole life: a requeue no longer numbers attempts
--    from 1 again (the attempts list of /logs/{id} was keyed by that number and lost history).
--    Renumber the events of submissions requeued before this version: the n-th "processing"
--    event of a submission opens attempt n; its outcome event carries the same number.
WITH numbered AS (
    SELECT id, attempt,
           greatest(1, sum(CASE WHEN event = 'processing' THEN 1 ELSE 0 END)
                           OVER (PARTITION BY submission_id ORDER BY id)) AS n
    FROM submission_events
    WHERE attempt IS NOT NULL
      AND submission_id IN (SELECT submission_id FROM submission_events WHERE event = 'requeued')
)
UPDATE submission_events e SET attempt = numbered.n
FROM numbered WHERE e.id = numbered.id AND e.attempt IS DISTINCT FROM numbered.n;

UPDATE submissions s SET attempts = m.n
FROM (SELECT submission_id, max(attempt) AS n FROM submission_events WHERE attempt IS NOT NULL
      GROUP BY submission_id) m
WHERE s.id = m.submission_id AND s.attempts < m.n;

-- 2. What an operator asks by: org unit, period and data set (program for tracker), kept in
--    columns computed by PostgreSQL from the payload as prepared for DHIS2 (so ingest needs no
--    change and every existing row gets them), with indexes for the /logs filters and the
--    facility × period report.
ALTER TABLE submissions
    ADD COLUMN org_unit text GENERATED ALWAYS AS (coalesce(
        dhis2_payload ->> 'orgUnit', dhis2_payload #>> '{dataValues,0,orgUnit}',
        dhis2_payload #>> '{trackedEntities,0,orgUnit}', dhis2_payload #>> '{enrollments,0,orgUnit}',
        dhis2_payload #>> '{events,0,orgUnit}', payload ->> 'orgUnit')) STORED,
    ADD COLUMN period text GENERATED ALWAYS AS (coalesce(
        dhis2_payload ->> 'period', dhis2_payload #>> '{dataValues,0,period}', payload ->> 'period')) STORED,
    ADD COLUMN data_set text GENERATED ALWAYS AS (coalesce(
        dhis2_payload ->> 'dataSet', dhis2_payload #>> '{enrollments,0,program}',
        dhis2_payload #>> '{events,0,program}', dhis2_payload #>> '{trackedEntities,0,enrollments,0,program}',
        payload ->> 'dataSet')) STORED;
CREATE INDEX submissions_org_unit_created ON submissions (org_unit, created_at DESC, id DESC);
CREATE INDEX submissions_period_created ON submissions (period, created_at DESC, id DESC);
CREATE INDEX submissions_data_set_created ON submissions (data_set, created_at DESC, id DESC);
-- The report: the latest submission per (org unit, period) of one data set.
CREATE INDEX submissions_report ON submissions (data_set, period, org_unit, id DESC) INCLUDE (status);
