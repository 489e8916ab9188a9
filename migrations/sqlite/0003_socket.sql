-- Web notifications (socket channel). SQLite runs a single instance, so there
-- is no presence here: the in-memory registry is the whole truth.

-- Recent messages, kept for a few minutes (PUSHGATE_SOCKET_REPLAY_SECONDS) so
-- a client reconnecting with `since` gets what it missed, across restarts.
-- Ordered by `seq`: message ids may come from the sender and need not sort.
CREATE TABLE socket_messages (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
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
