-- The MQTT mirror's outbox (docs/mqtt.md). The events table already is a
-- durable, id-ordered queue, so the outbox is a cursor into it: every event
-- with an id above `last_sent_id` is still to be published. The cursor moves
-- only after the broker's PUBACK, through the one writer; `dropped` counts
-- events skipped because more than `mqtt.outbox_cap` were waiting.
-- `last_sent_id` is NULL until the mirror first runs, which starts it at the
-- newest event (history from before MQTT was configured is not replayed).
CREATE TABLE mqtt_outbox (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_sent_id  INTEGER,
    dropped       INTEGER NOT NULL DEFAULT 0 CHECK (dropped >= 0)
);
INSERT INTO mqtt_outbox (id, last_sent_id, dropped) VALUES (1, NULL, 0);
