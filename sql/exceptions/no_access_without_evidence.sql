-- Exception: a resident no-access recorded without evidence.
-- Source: Housing Ombudsman (evidence before a no-access is recorded); DOMAIN.md §4.
-- Reference (population, clock, choices): docs/kpis.md.
-- Rule: latest outcome no_access, and not all of: arrival time inside the slot, at least one
-- contact attempt, a card left (`evidenced` in appointment_outcomes).
SELECT 'no_access_without_evidence' AS rule, 'appointment:' || ref AS record,
       'no access on ' || CAST(slot_date AS VARCHAR) || ': '
           || CASE WHEN arrived_at IS NULL THEN 'no arrival time'
                   WHEN arrived_at < window_start OR arrived_at > window_end THEN 'arrived outside the slot'
                   WHEN COALESCE(contact_attempts, 0) < 1 THEN 'no contact attempt'
                   ELSE 'no card left' END AS detail
FROM appointment_outcomes
WHERE outcome = 'no_access' AND NOT evidenced
