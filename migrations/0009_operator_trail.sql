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
