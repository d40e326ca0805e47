-- The event store. Ids, dedup keys and every JSON document are bytea: the
-- contract allows any byte in an id (NUL included), and PostgreSQL's text and
-- jsonb refuse NUL; bytea also keeps the canonical event byte for byte.

-- The raw body of one request, shared by the events of a batch.
CREATE TABLE bodies (
	id bigserial PRIMARY KEY,
	body bytea COMPRESSION lz4 NOT NULL
);

CREATE TABLE events (
	source text NOT NULL,
	id bytea NOT NULL,
	provider text NOT NULL,
	type text NOT NULL,
	status text NOT NULL,
	received_at timestamptz NOT NULL,
	-- The large columns compress with lz4, which costs a fraction of the
	-- CPU of the default pglz on the write path.
	event bytea COMPRESSION lz4 NOT NULL,
	headers bytea,
	-- The raw request: inline for a single-event request, else in bodies.
	raw_body bytea COMPRESSION lz4,
	body_id bigint,
	batch_index integer NOT NULL,
	batch_size integer NOT NULL,
	-- One JSON-encoded store.Attempt per element, oldest first.
	attempts bytea[] NOT NULL DEFAULT '{}',
	next_attempt_at timestamptz,
	replays integer NOT NULL DEFAULT 0,
	dead_reason text,
	lease_owner text,
	lease_until timestamptz,
	reserved_until timestamptz,
	-- How long a delivered event is kept; 0 keeps it until purged.
	retention_us bigint NOT NULL,
	-- When a delivered event goes (received its 2xx plus retention).
	expires_at timestamptz,
	dedup_key bytea,
	dedup_window_us bigint,
	PRIMARY KEY (source, id)
) WITH (fillfactor = 85); -- room on each page for HOT updates of the lease

-- Claim: due pending and retrying events, oldest due first (a new event is
-- due at its arrival). The lease is left out of the index and checked on
-- the row: the rows leased at one time are at most the delivery workers of
-- every gateway, and a claim that changes no indexed column is a HOT update.
-- The store's queries spell the expression exactly so.
CREATE INDEX events_due ON events ((COALESCE(next_attempt_at, received_at)), source)
	WHERE status IN ('pending', 'retrying');
-- List newest first (and its cursor), unfiltered or by time range.
CREATE INDEX events_received ON events (received_at, source, id);
-- List by source, by status (and Counts, an index-only scan), by type.
CREATE INDEX events_source_received ON events (source, received_at);
CREATE INDEX events_status_received ON events (status, received_at);
CREATE INDEX events_type_received ON events (type, received_at);
-- Retention: delivered events past their expiry, in bounded batches.
CREATE INDEX events_expires ON events (expires_at) WHERE expires_at IS NOT NULL;
-- Reservations abandoned by a process that died mid-delivery.
CREATE INDEX events_reserved ON events (reserved_until) WHERE status = 'reserved';
-- The events sharing a body, so the last one deleted takes the body along.
CREATE INDEX events_body ON events (body_id) WHERE body_id IS NOT NULL;

-- Dedup keys of senders that give no event id: held by one event until
-- held_until: its insertion plus the window, or for a reservation its
-- ReservedUntil (a live one holds the key past the window, an abandoned one
-- frees it within); a reservation that is delivered holds it to the window.
CREATE TABLE dedup_keys (
	source text NOT NULL,
	dedup_key bytea NOT NULL,
	id bytea NOT NULL,
	window_until timestamptz NOT NULL,
	held_until timestamptz NOT NULL,
	PRIMARY KEY (source, dedup_key)
);
CREATE INDEX dedup_keys_holder ON dedup_keys (source, id);
CREATE INDEX dedup_keys_held ON dedup_keys (held_until);

-- Whatever deletes an event (purge, retention, release, a replacing insert)
-- deletes the dedup keys it holds, and its body with the last event that
-- refers to it. The body row is locked first so two transactions deleting
-- the last two events of one batch see each other's deletion instead of
-- both keeping the body.
CREATE FUNCTION events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM dedup_keys WHERE source = OLD.source AND id = OLD.id;
	IF OLD.body_id IS NULL THEN
		RETURN NULL;
	END IF;
	PERFORM 1 FROM bodies WHERE id = OLD.body_id FOR UPDATE;
	DELETE FROM bodies b WHERE b.id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM events e WHERE e.body_id = OLD.body_id);
	RETURN NULL;
END $$;
CREATE TRIGGER events_deleted AFTER DELETE ON events
	FOR EACH ROW EXECUTE FUNCTION events_deleted();

-- insert_event is the insert-if-absent of one record: the id must be free
-- (absent, or held only by an expired reservation or an expired delivered
-- event, which it replaces), then the dedup key (absent, or its holding
-- period over; an abandoned reservation holding it is deleted). Concurrent
-- inserters of one key are decided by the primary keys (ON CONFLICT DO
-- NOTHING), so exactly one wins. It answers whether the record was stored
-- and, if not, the status and id of the record it duplicates.
CREATE FUNCTION insert_event(
	p_source text, p_id bytea, p_provider text, p_type text, p_status text,
	p_received_at timestamptz, p_event bytea, p_headers bytea, p_raw_body bytea, p_body_id bigint,
	p_batch_index integer, p_batch_size integer, p_next_attempt_at timestamptz,
	p_reserved_until timestamptz, p_retention_us bigint, p_expires_at timestamptz,
	p_dedup_key bytea, p_dedup_window_us bigint, p_now timestamptz,
	OUT inserted boolean, OUT existing_status text, OUT existing_id bytea
) LANGUAGE plpgsql AS $$
DECLARE
	cur record;
	held record;
BEGIN
	inserted := false;
	SELECT status, reserved_until, expires_at INTO cur FROM events
		WHERE source = p_source AND id = p_id FOR UPDATE;
	IF FOUND THEN
		IF (cur.status = 'reserved' AND cur.reserved_until <= p_now) OR cur.expires_at <= p_now THEN
			DELETE FROM events WHERE source = p_source AND id = p_id;
		ELSE
			existing_status := cur.status;
			existing_id := p_id;
			RETURN;
		END IF;
	END IF;
	IF p_dedup_key IS NOT NULL THEN
		SELECT id, held_until INTO held FROM dedup_keys
			WHERE source = p_source AND dedup_key = p_dedup_key FOR UPDATE;
		IF FOUND THEN
			IF held.held_until > p_now THEN
				existing_id := held.id;
				SELECT status INTO existing_status FROM events WHERE source = p_source AND id = held.id;
				RETURN;
			END IF;
			DELETE FROM dedup_keys WHERE source = p_source AND dedup_key = p_dedup_key;
			DELETE FROM events WHERE source = p_source AND id = held.id
				AND status = 'reserved' AND reserved_until <= p_now;
		END IF;
	END IF;
	INSERT INTO events (source, id, provider, type, status, received_at, event, headers,
		raw_body, body_id, batch_index, batch_size, next_attempt_at, reserved_until, retention_us,
		expires_at, dedup_key, dedup_window_us)
	VALUES (p_source, p_id, p_provider, p_type, p_status, p_received_at, p_event, p_headers,
		p_raw_body, p_body_id, p_batch_index, p_batch_size, p_next_attempt_at, p_reserved_until, p_retention_us,
		p_expires_at, p_dedup_key, p_dedup_window_us)
	ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		-- A concurrent transaction stored the id first.
		existing_id := p_id;
		SELECT status INTO existing_status FROM events WHERE source = p_source AND id = p_id;
		RETURN;
	END IF;
	IF p_dedup_key IS NOT NULL THEN
		INSERT INTO dedup_keys (source, dedup_key, id, window_until, held_until)
		VALUES (p_source, p_dedup_key, p_id,
			p_now + p_dedup_window_us * interval '1 microsecond',
			CASE WHEN p_status = 'reserved' THEN p_reserved_until
				ELSE p_now + p_dedup_window_us * interval '1 microsecond' END)
		ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			-- A concurrent transaction took the key first: this record
			-- is its duplicate after all.
			DELETE FROM events WHERE source = p_source AND id = p_id;
			SELECT id INTO existing_id FROM dedup_keys WHERE source = p_source AND dedup_key = p_dedup_key;
			SELECT status INTO existing_status FROM events WHERE source = p_source AND id = existing_id;
			RETURN;
		END IF;
	END IF;
	inserted := true;
END $$;
