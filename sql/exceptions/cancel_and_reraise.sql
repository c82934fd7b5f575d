-- Exception: a work order cancelled and another raised on the same property within 7 days
-- (a cancel-and-re-raise restarts the clock and hides delay).
-- Source: Housing Ombudsman exception reporting; DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
-- Rule: work order B is raised on A's property after A's cancellation and no more than 7 days
-- (604,800 seconds) later.
SELECT 'cancel_and_reraise_within_7_days' AS rule, 'work_order:' || a.ref AS record,
       'cancelled ' || CAST(a.cancelled_at AS VARCHAR) || ', re-raised as ' || b.ref || ' on '
           || CAST(b.raised_at AS VARCHAR) AS detail
FROM repairs a
JOIN repairs b ON b.property_ref = a.property_ref AND b.ref <> a.ref
WHERE a.cancelled_at IS NOT NULL
  AND b.raised_at >= a.cancelled_at
  AND date_part('epoch', b.raised_at) - date_part('epoch', a.cancelled_at) <= 604800
