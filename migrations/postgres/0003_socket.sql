-- Web notifications (socket channel).

-- Recent messages, kept for a few minutes (PUSHGATE_SOCKET_REPLAY_SECONDS) so
-- a client reconnecting with `since` gets what it missed on any instance, and
-- so payloads too large for NOTIFY can be fetched by `seq`. Ordered by `seq`:
-- message ids may come from the sender and need not sort.
CREATE TABLE socket_messages (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL,
    app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL,   -- 'client' | 'user' | 'all'
    target      TEXT NOT NULL,   -- the client or user id; '' for 'all'
    payload     TEXT NOT NULL,   -- the frame as sent
    created_at  BIGINT NOT NULL
);
CREATE INDEX socket_messages_app_id ON socket_messages (app_id, id);
CREATE INDEX socket_messages_app_seq ON socket_messages (app_id, seq);
CREATE INDEX socket_messages_created ON socket_messages (created_at);

-- Live gateway instances; one without a recent heartbeat is dead and its
-- presence is ignored, then removed.
CREATE TABLE socket_instances (
    instance_id  TEXT PRIMARY KEY,
    heartbeat_at BIGINT NOT NULL
);

-- Which instance holds connections of which client, so that any instance can
-- answer counts and not_found for the whole cluster.
CREATE TABLE socket_presence (
    instance_id TEXT NOT NULL REFERENCES socket_instances(instance_id) ON DELETE CASCADE,
    app_id      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,   -- '' when the connections gave none
    connections INTEGER NOT NULL,
    PRIMARY KEY (instance_id, app_id, client_id, user_id)
);
CREATE INDEX socket_presence_client ON socket_presence (app_id, client_id);
CREATE INDEX socket_presence_user ON socket_presence (app_id, user_id);
