-- The delivery queue without reading finished rows (nor their bodies): a claim
-- walks the pending deliveries in event order and asks whether the same hook
-- has an older pending one; pruning finds finished deliveries by age and by
-- hook. Partial indexes, so each holds only the rows its query wants.
-- (The (state, run_after) index made a claim visit every pending delivery and
-- every older delivery of its hook: seconds per claim once hooks had history.)
DROP INDEX hook_deliveries_queue;
CREATE INDEX hook_deliveries_pending ON hook_deliveries (event_seq) WHERE state = 'pending';
CREATE INDEX hook_deliveries_pending_hook ON hook_deliveries (hook_id, event_seq) WHERE state = 'pending';
CREATE INDEX hook_deliveries_finished ON hook_deliveries (finished_at) WHERE state <> 'pending';
CREATE INDEX hook_deliveries_finished_hook ON hook_deliveries (hook_id, event_seq) WHERE state <> 'pending';
