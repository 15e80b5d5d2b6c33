-- citywatch store, version 6: the command center's audit trail.
--
-- Every state change and admin action made through the center or its command line — a token
-- issued or revoked, a user created, changed or disabled (from config too), a work-order
-- action, a photo attached — with who did it and from where. Rows are only ever added; the
-- work-order timeline (workorder_events) keeps what happened to an order, this table keeps
-- who asked for it and from which address. Failed logins are not stored here (a flood of junk
-- tokens must cost no writes): the center logs them, without the token.
CREATE TABLE IF NOT EXISTS center_audit (
    id        bigserial PRIMARY KEY,
    time      timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,          -- a center user, 'config' or 'command line'
    source    text NOT NULL DEFAULT '',  -- the client's address ('' for config and command line)
    action    text NOT NULL,          -- e.g. token.issued, tokens.revoked, workorder.dispatch
    target    text NOT NULL DEFAULT '',  -- the user or work order acted on
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS center_audit_actor_idx ON center_audit (actor, id);
CREATE INDEX IF NOT EXISTS center_audit_action_idx ON center_audit (action, id);
