-- citywatch store, version 9: which center process sends each webhook notice.
-- Every center process reads the live feed, and behind a load balancer several run. A new
-- order's notice goes out from the process whose INSERT claims (target, feed position)
-- first, so a duty chat hears of each order once however many replicas there are.
CREATE TABLE IF NOT EXISTS webhook_claims (
    target     text        NOT NULL,
    feed_id    bigint      NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, feed_id)
);
CREATE INDEX IF NOT EXISTS webhook_claims_claimed_at_idx ON webhook_claims (claimed_at);
