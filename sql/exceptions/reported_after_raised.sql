-- Exception: the report time is missing, or after the work order was raised, so the repair
-- clock (which starts at the report) cannot be trusted.
-- Source: Housing Ombudsman exception reporting; DOMAIN.md §4 (the clock starts at reported_at).
-- Reference (population, clock, choices): docs/kpis.md.
-- Rule: the work order names no repair request, its repair request has not arrived, or the
-- request's reported_at is later than the work order's raised_at. A follow-on order (it
-- names its parent) needs no request: its own clock starts when it is raised.
SELECT 'reported_at_missing_or_after_raised_at' AS rule, 'work_order:' || w.ref AS record,
       CASE
           WHEN w.repair_request_ref IS NULL THEN 'no repair request named'
           WHEN q.ref IS NULL THEN 'repair request ' || w.repair_request_ref || ' not received'
           ELSE 'reported ' || CAST(q.reported_at AS VARCHAR) || ' after raised ' || CAST(w.raised_at AS VARCHAR)
       END AS detail
FROM current_work_orders w
LEFT JOIN current_repair_requests q ON q.ref = w.repair_request_ref
WHERE (w.repair_request_ref IS NULL AND w.parent_ref IS NULL)
   OR (w.repair_request_ref IS NOT NULL AND q.ref IS NULL)
   OR q.reported_at > w.raised_at
