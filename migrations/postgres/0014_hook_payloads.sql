-- A delivery no longer stores its body (the package document, often 50-120 KB,
-- once per hook): a fanned-out event is kept once, with the payload, for as
-- long as a delivery refers to it, and each request is built from it when it
-- is sent (the same bytes on every attempt: the event, the payload and the
-- hook's owner never change). A delivery row is its small state alone, so a
-- claim and a finish rewrite a few bytes. Events nobody refers to any more are
-- pruned.
CREATE TABLE hook_payloads (
    event_seq  BIGINT PRIMARY KEY,          -- the outbox event's seq (hook_deliveries.event_seq)
    package    TEXT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,               -- the event's JSON detail
    created_at BIGINT NOT NULL,             -- when the event happened
    payload    TEXT NOT NULL                -- the package document when it was fanned out (JSON)
);
-- hook_deliveries.body is now '' ("built from hook_payloads"); deliveries
-- fanned out before this migration keep theirs while pending, finished ones
-- no longer need it.
UPDATE hook_deliveries SET body = '' WHERE state <> 'pending';
