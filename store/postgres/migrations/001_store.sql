-- The event store. Ids, dedup keys, lanes and the event's JSON documents are
-- bytea: the contract allows any byte in an id (NUL included), and
-- PostgreSQL's text and jsonb refuse NUL; bytea also keeps the canonical
-- event byte for byte. Attempts are json (not jsonb), which keeps a \u0000
-- escape as written.

-- The raw body of one request, shared by the events of a batch.
CREATE TABLE bodies (
	id bigserial PRIMARY KEY,
	body bytea COMPRESSION lz4 NOT NULL
);

-- One row per record: the event, its request, its keys and the roll-up of
-- its deliveries' statuses (store.Rollup), rewritten in the transaction of
-- every transition, so that listings and counts never read the deliveries.
CREATE TABLE events (
	source text NOT NULL,
	id bytea NOT NULL,
	provider text NOT NULL,
	type text NOT NULL,
	subject text,
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
	trace_parent text,
	trace_state text,
	reserved_until timestamptz,
	-- How long a settled event is kept; 0 keeps it until purged.
	retention_us bigint NOT NULL,
	-- When a settled event goes (the time it settled plus retention).
	expires_at timestamptz,
	dedup_key bytea,
	dedup_window_us bigint,
	PRIMARY KEY (source, id)
);

-- List newest first (and its cursor), unfiltered or by time range.
CREATE INDEX events_received ON events (received_at, source, id);
-- List by source, by status (and Counts, an index-only scan), by type.
CREATE INDEX events_source_received ON events (source, received_at);
CREATE INDEX events_status_received ON events (status, received_at);
CREATE INDEX events_type_received ON events (type, received_at);
-- Everything about one customer, order or transaction.
CREATE INDEX events_subject_received ON events (subject, received_at, source, id)
	WHERE subject IS NOT NULL;
-- Retention: settled events past their expiry, in bounded batches.
CREATE INDEX events_expires ON events (expires_at) WHERE expires_at IS NOT NULL;
-- Reservations abandoned by a process that died mid-delivery.
CREATE INDEX events_reserved ON events (reserved_until) WHERE status = 'reserved';
-- The events sharing a body, so the last one deleted takes the body along.
CREATE INDEX events_body ON events (body_id) WHERE body_id IS NOT NULL;

-- One row per (event, destination): the delivery's own state, deleted with
-- its event (events_deleted).
CREATE TABLE deliveries (
	source text NOT NULL,
	id bytea NOT NULL,
	destination text NOT NULL,
	-- The delivery's place in its route's list of destinations.
	pos smallint NOT NULL,
	status text NOT NULL,
	-- The event's received_at: a pending delivery is due at it.
	received_at timestamptz NOT NULL,
	next_attempt_at timestamptz,
	-- The nanoseconds of the next attempt's time below PostgreSQL's
	-- microseconds, so that a delivery shows the time it was given.
	next_attempt_nanos smallint NOT NULL DEFAULT 0,
	-- One store.Attempt per element, oldest first.
	attempts json[] NOT NULL DEFAULT '{}',
	replays integer NOT NULL DEFAULT 0,
	dead_reason text,
	lease_owner text,
	lease_until timestamptz,
	lane bytea,
	sequence bigint,
	-- The delivery holds its lane: nothing behind it is claimed. Set for a
	-- laned delivery until it is delivered or skipped with no lease on it
	-- (a replay may deliver it while a worker's attempt is in flight: the
	-- lane waits for that attempt too, or for its lease to run out).
	lane_hold boolean NOT NULL DEFAULT false,
	-- The delivery is its lane's head: the holding delivery of smallest
	-- sequence, the only one of its lane that Claim looks at. Kept by the
	-- inserts (a new delivery of a lane nothing holds is its head) and by
	-- the lanes_moved triggers (the next holding delivery becomes the head
	-- when one stops holding the lane or is deleted), both under the
	-- lanes row's lock.
	lane_head boolean NOT NULL DEFAULT false,
	PRIMARY KEY (source, id, destination)
) WITH (fillfactor = 85); -- room on each page for HOT updates of the lease

-- Claim: due pending and retrying deliveries of the claimer's destinations,
-- oldest due first (a pending delivery is due at its event's arrival, or
-- when MarkDelivered made it pending), laned ones only at the head of their
-- lane, so that a backlog waiting behind its lanes' heads (their backend
-- down) is not walked by every claim. The lease is left out of every index
-- and checked on the row: the rows leased at one time are at most the
-- delivery workers of every gateway, and a claim that changes no indexed
-- column is a HOT update. The store's queries spell the expression exactly
-- so.
CREATE INDEX deliveries_due ON deliveries (destination, (COALESCE(next_attempt_at, received_at)))
	WHERE status IN ('pending', 'retrying') AND (lane IS NULL OR lane_head);
-- Claim of a laned delivery: the deliveries holding its lane ahead of it.
CREATE INDEX deliveries_lane ON deliveries (destination, lane, sequence) WHERE lane_hold;
-- The sweep of lanes held by a delivery a replay delivered while a worker
-- leased it, once that lease has run out unrecorded (its worker died): a
-- handful of rows, whose lease is read on the row, since an index on a
-- lease column would make every claim's update a non-HOT one.
CREATE INDEX deliveries_lane_leased ON deliveries (destination)
	WHERE lane_hold AND status IN ('delivered', 'skipped');
-- DeliveryCounts (an index-only scan) and List by destination and status.
CREATE INDEX deliveries_destination_status ON deliveries (destination, status);

-- The last sequence number given in each lane, bumped in the inserting
-- transaction: the row lock orders concurrent inserters of one lane, so
-- numbers increase in commit order.
CREATE TABLE lanes (
	destination text NOT NULL,
	lane bytea NOT NULL,
	last bigint NOT NULL,
	PRIMARY KEY (destination, lane)
);

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
-- deletes its deliveries and the dedup keys it holds, and its body with the
-- last event that refers to it. The body row is locked first so two
-- transactions deleting the last two events of one batch see each other's
-- deletion instead of both keeping the body.
CREATE FUNCTION events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM deliveries WHERE source = OLD.source AND id = OLD.id;
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

-- rollup is store.Rollup over a record's delivery statuses.
CREATE FUNCTION rollup(statuses text[]) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE
		WHEN cardinality(statuses) = 0 THEN 'unmatched'
		WHEN 'reserved' = ANY(statuses) THEN 'reserved'
		WHEN 'released' = ANY(statuses) THEN 'released'
		WHEN 'dead' = ANY(statuses) THEN 'dead'
		WHEN 'retrying' = ANY(statuses) THEN 'retrying'
		WHEN 'pending' = ANY(statuses) THEN 'pending'
		ELSE 'delivered' END
$$;

-- settle rewrites an event's status as the roll-up of its deliveries as
-- they stand (its caller holds the event's row lock, so no other
-- transition of the event runs meanwhile), and its expiry: a settled event
-- (delivered, released or unmatched) goes its retention after now.
CREATE FUNCTION settle(p_source text, p_id bytea, p_now timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	SELECT rollup(COALESCE(array_agg(status), '{}')) INTO st FROM deliveries
		WHERE source = p_source AND id = p_id;
	UPDATE events SET status = st,
		expires_at = CASE WHEN st IN ('delivered', 'released', 'unmatched') AND retention_us > 0
			THEN p_now + retention_us * interval '1 microsecond' END
		WHERE source = p_source AND id = p_id
			AND (status <> st OR st IN ('delivered', 'released', 'unmatched'));
	RETURN st;
END $$;

-- numbered is the attempt a (Go's JSON of a store.Attempt, its number
-- first) numbered n.
CREATE FUNCTION numbered(a text, n integer) RETURNS json LANGUAGE sql IMMUTABLE AS $$
	SELECT regexp_replace(a, '^\{"number":-?[0-9]+', '{"number":' || n)::json
$$;

-- insert_deliveries stores the deliveries of a new event, each laned
-- pending one numbered after the last of its lane (a held one is numbered
-- by mark_delivered, when the event is accepted), with the attempts carried over from
-- a released record (carried holds one JSON array per destination of
-- carried_dest). It returns each delivery's sequence number, in order (NULL
-- for one without a lane). PL/pgSQL, not SQL, so that its plan is cached
-- for the session; the store's one-statement insert spells the same
-- statement.
CREATE FUNCTION insert_deliveries(
	p_source text, p_id bytea, p_received_at timestamptz,
	p_destinations text[], p_statuses text[], p_lanes bytea[],
	carried_dest text[], carried json[]
) RETURNS bigint[] LANGUAGE plpgsql
-- A custom plan, made for the first calls' array sizes, looks cheaper
-- than the generic one to the planner, which then plans the statements
-- again on every call: four times the cost of the insert itself.
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
	seq_dest text[];
	seq_last bigint[];
	seqs bigint[];
BEGIN
	-- Numbers first: this locks each lane's row, so the next statement,
	-- with a snapshot taken after the lock, sees every delivery of the
	-- lane committed before and tells whether the new one is its head.
	WITH l AS (
		INSERT INTO lanes AS l (destination, lane, last)
		SELECT t.destination, t.lane, 1 FROM unnest(p_destinations, p_statuses, p_lanes) AS t(destination, status, lane)
		WHERE t.lane IS NOT NULL AND t.status = 'pending'
		ON CONFLICT (destination, lane) DO UPDATE SET last = l.last + 1
		RETURNING destination, last)
	SELECT array_agg(destination), array_agg(last) INTO seq_dest, seq_last FROM l;
	WITH d AS (
		SELECT t.destination, t.status, t.lane, (t.pos - 1)::smallint AS pos, n.last
		FROM unnest(p_destinations, p_statuses, p_lanes) WITH ORDINALITY AS t(destination, status, lane, pos)
		LEFT JOIN unnest(seq_dest, seq_last) AS n(destination, last) ON n.destination = t.destination),
	ins AS (
		INSERT INTO deliveries (source, id, destination, pos, status, received_at, attempts, lane, sequence, lane_hold, lane_head)
		SELECT p_source, p_id, d.destination, d.pos, d.status, p_received_at,
			COALESCE((SELECT array_agg(a.v ORDER BY a.n)
				FROM unnest(carried_dest, carried) AS c(dest, att),
					json_array_elements(c.att) WITH ORDINALITY AS a(v, n)
				WHERE c.dest = d.destination), '{}'),
			d.lane, d.last, d.last IS NOT NULL,
			-- A scalar subquery, not NOT EXISTS: the planner could turn
			-- that into an anti-join reading every holding delivery, where
			-- this is one index probe per delivery.
			d.last IS NOT NULL AND (SELECT 1 FROM deliveries h
				WHERE h.lane_hold AND h.destination = d.destination AND h.lane = d.lane LIMIT 1) IS NULL
		FROM d
		RETURNING pos, sequence)
	SELECT COALESCE(array_agg(sequence ORDER BY pos), '{}') INTO seqs FROM ins;
	RETURN seqs;
END $$;

-- lanes_moved keeps a lane's head when a delivery stops holding it or is
-- deleted: under the lane row's lock (the lock every insert into the lane
-- takes), the holding delivery of smallest sequence becomes the head, and
-- its destination is notified on the session's channel
-- (webhook_gateway.channel), so that every gateway's workers claim it at
-- once. An insert that took the lock first has committed its delivery,
-- which this statement's snapshot, taken after the lock, sees; one that
-- takes it after sees this transaction's release.
CREATE FUNCTION lanes_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	ch text := current_setting('webhook_gateway.channel', true);
BEGIN
	PERFORM 1 FROM lanes WHERE destination = OLD.destination AND lane = OLD.lane FOR UPDATE;
	UPDATE deliveries SET lane_head = true
		WHERE destination = OLD.destination AND lane = OLD.lane AND lane_hold AND NOT lane_head
			AND sequence = (SELECT min(sequence) FROM deliveries
				WHERE destination = OLD.destination AND lane = OLD.lane AND lane_hold);
	IF FOUND AND ch IS NOT NULL THEN
		PERFORM pg_notify(ch, OLD.destination);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER lanes_moved_update AFTER UPDATE OF lane_hold ON deliveries
	FOR EACH ROW WHEN (OLD.lane_hold AND NOT NEW.lane_hold) EXECUTE FUNCTION lanes_moved();
CREATE TRIGGER lanes_moved_delete AFTER DELETE ON deliveries
	FOR EACH ROW WHEN (OLD.lane_hold) EXECUTE FUNCTION lanes_moved();

-- insert_event is the insert-if-absent of one record with its deliveries:
-- the id must be free (absent, or held only by an expired reservation, a
-- released record or an expired settled event, which it replaces; a
-- released record's attempts are carried over to the delivery of the same
-- destination), then the dedup key (absent, or its holding period over; an
-- abandoned reservation holding it is deleted). Concurrent inserters of one
-- key are decided by the primary keys (ON CONFLICT DO NOTHING), so exactly
-- one wins. It answers whether the record was stored (with its deliveries'
-- sequence numbers) and, if not, the status and id of the record it
-- duplicates.
CREATE FUNCTION insert_event(
	p_source text, p_id bytea, p_provider text, p_type text, p_subject text, p_status text,
	p_received_at timestamptz, p_event bytea, p_headers bytea, p_raw_body bytea, p_body_id bigint,
	p_batch_index integer, p_batch_size integer, p_trace_parent text, p_trace_state text,
	p_reserved_until timestamptz, p_retention_us bigint, p_expires_at timestamptz,
	p_dedup_key bytea, p_dedup_window_us bigint, p_now timestamptz,
	p_destinations text[], p_statuses text[], p_lanes bytea[],
	OUT inserted boolean, OUT existing_status text, OUT existing_id bytea, OUT sequences bigint[]
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$ -- as insert_deliveries
DECLARE
	cur record;
	held record;
	carried_dest text[] := '{}';
	carried json[] := '{}';
BEGIN
	inserted := false;
	SELECT status, reserved_until, expires_at INTO cur FROM events
		WHERE source = p_source AND id = p_id FOR UPDATE;
	IF FOUND THEN
		IF cur.status = 'released' AND (cur.expires_at IS NULL OR cur.expires_at > p_now) THEN
			SELECT COALESCE(array_agg(destination), '{}'), COALESCE(array_agg(to_json(attempts)), '{}')
				INTO carried_dest, carried FROM deliveries
				WHERE source = p_source AND id = p_id AND cardinality(attempts) > 0;
		END IF;
		IF cur.status = 'released' OR (cur.status = 'reserved' AND cur.reserved_until <= p_now) OR cur.expires_at <= p_now THEN
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
	INSERT INTO events (source, id, provider, type, subject, status, received_at, event, headers,
		raw_body, body_id, batch_index, batch_size, trace_parent, trace_state, reserved_until,
		retention_us, expires_at, dedup_key, dedup_window_us)
	VALUES (p_source, p_id, p_provider, p_type, NULLIF(p_subject, ''), p_status, p_received_at, p_event, p_headers,
		p_raw_body, p_body_id, p_batch_index, p_batch_size, p_trace_parent, p_trace_state, p_reserved_until,
		p_retention_us, p_expires_at, p_dedup_key, p_dedup_window_us)
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
	sequences := insert_deliveries(p_source, p_id, p_received_at, p_destinations, p_statuses, p_lanes,
		carried_dest, carried);
	inserted := true;
END $$;

-- The transitions below lock the event's row first, so that the
-- transitions of one event's deliveries run one after another and each
-- roll-up (settle) sees the deliveries as they stand. Each returns a code
-- the store maps to its errors: 0 done, 1 no such event, 2 no delivery to
-- that destination, 3 the lease was another owner's, 4 the delivery is not
-- dead (Skip). A delivery made pending notifies its destination on
-- p_channel; a lane moving on is notified by lanes_moved. Whatever stops
-- holding its lane stops being its head.

-- release_event ends a reservation whose sync delivery failed.
CREATE FUNCTION release_event(p_source text, p_id bytea, p_reserved_until timestamptz,
	p_attempt text, p_now timestamptz) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1 FROM events WHERE source = p_source AND id = p_id
		AND status = 'reserved' AND reserved_until = p_reserved_until FOR UPDATE;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	UPDATE deliveries SET status = 'released',
		attempts = CASE WHEN p_attempt IS NULL THEN attempts
			ELSE array_append(attempts, numbered(p_attempt, cardinality(attempts) + 1)) END
		WHERE source = p_source AND id = p_id AND status = 'reserved';
	UPDATE events SET reserved_until = NULL WHERE source = p_source AND id = p_id;
	DELETE FROM dedup_keys WHERE source = p_source AND id = p_id;
	PERFORM settle(p_source, p_id, p_now);
END $$;

-- mark_delivered records a sync delivery the backend accepted: the reserved
-- (or released) delivery becomes delivered with the attempt, and the held
-- ones pending, due now, each laned one with its lane's next number.
CREATE FUNCTION mark_delivered(p_source text, p_id bytea, p_attempt text, p_now timestamptz, p_channel text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	d record;
	n bigint;
BEGIN
	PERFORM 1 FROM events WHERE source = p_source AND id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 1;
	END IF;
	UPDATE deliveries SET status = 'delivered',
		attempts = array_append(attempts, numbered(p_attempt, cardinality(attempts) + 1)),
		next_attempt_at = NULL, dead_reason = NULL, lease_owner = NULL, lease_until = NULL,
		lane_hold = false, lane_head = false
		WHERE source = p_source AND id = p_id AND status IN ('reserved', 'released');
	FOR d IN UPDATE deliveries SET status = 'pending', next_attempt_at = p_now, next_attempt_nanos = 0
		WHERE source = p_source AND id = p_id AND status = 'held' RETURNING destination, lane
	LOOP
		IF d.lane IS NOT NULL THEN
			-- Numbered now, as insert_deliveries numbers a pending one:
			-- the lane's row locked first, its head decided after.
			INSERT INTO lanes AS l (destination, lane, last) VALUES (d.destination, d.lane, 1)
				ON CONFLICT (destination, lane) DO UPDATE SET last = l.last + 1
				RETURNING last INTO n;
			UPDATE deliveries SET sequence = n, lane_hold = true,
				lane_head = NOT EXISTS (SELECT 1 FROM deliveries h
					WHERE h.lane_hold AND h.destination = d.destination AND h.lane = d.lane)
				WHERE source = p_source AND id = p_id AND destination = d.destination;
		END IF;
		PERFORM pg_notify(p_channel, d.destination);
	END LOOP;
	UPDATE events SET reserved_until = NULL WHERE source = p_source AND id = p_id;
	UPDATE dedup_keys SET held_until = window_until WHERE source = p_source AND id = p_id;
	PERFORM settle(p_source, p_id, p_now);
	RETURN 0;
END $$;

-- record_attempt appends a scheduled attempt made under p_owner's lease and,
-- if the lease was p_owner's and the delivery is not settled meanwhile,
-- applies the decision (status, next attempt, dead reason); the lease ends.
CREATE FUNCTION record_attempt(p_source text, p_id bytea, p_destination text, p_owner text,
	p_attempt json, p_status text, p_next timestamptz, p_next_nanos smallint, p_reason text, p_now timestamptz, p_channel text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	d record;
	won boolean;
	open boolean;
	hold boolean;
BEGIN
	PERFORM 1 FROM events WHERE source = p_source AND id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 1;
	END IF;
	SELECT status, lease_owner, lane_hold INTO d FROM deliveries
		WHERE source = p_source AND id = p_id AND destination = p_destination FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 2;
	END IF;
	won := d.lease_owner IS NOT DISTINCT FROM p_owner;
	open := d.status NOT IN ('delivered', 'skipped');
	hold := d.lane_hold;
	IF won THEN
		hold := hold AND CASE WHEN open THEN p_status <> 'delivered' ELSE false END;
	END IF;
	UPDATE deliveries SET attempts = array_append(attempts, p_attempt),
		status = CASE WHEN won AND open THEN p_status ELSE status END,
		next_attempt_at = CASE WHEN won AND open THEN p_next ELSE next_attempt_at END,
		next_attempt_nanos = CASE WHEN won AND open THEN p_next_nanos ELSE next_attempt_nanos END,
		dead_reason = CASE WHEN won AND open THEN p_reason ELSE dead_reason END,
		lease_owner = CASE WHEN won THEN NULL ELSE lease_owner END,
		lease_until = CASE WHEN won THEN NULL ELSE lease_until END,
		lane_hold = hold, lane_head = lane_head AND hold
		WHERE source = p_source AND id = p_id AND destination = p_destination;
	PERFORM settle(p_source, p_id, p_now);
	IF NOT won THEN
		RETURN 3;
	END IF;
	RETURN 0;
END $$;

-- release_lease gives p_owner's lease back without an attempt.
CREATE FUNCTION release_lease(p_source text, p_id bytea, p_destination text, p_owner text, p_channel text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	d record;
BEGIN
	UPDATE deliveries SET lease_owner = NULL, lease_until = NULL,
		lane_hold = lane_hold AND status NOT IN ('delivered', 'skipped'),
		lane_head = lane_head AND status NOT IN ('delivered', 'skipped')
		WHERE source = p_source AND id = p_id AND destination = p_destination AND lease_owner = p_owner
		RETURNING status, lane_hold INTO d;
	IF FOUND THEN
		-- Claimable again at once, here or on another gateway.
		PERFORM pg_notify(p_channel, p_destination);
	END IF;
END $$;

-- record_replay appends an operator's replay attempt and counts it; p_delivered
-- makes the delivery delivered unless it is reserved or held. The lease
-- stays, and with it the lane's hold until its owner records its attempt.
CREATE FUNCTION record_replay(p_source text, p_id bytea, p_destination text, p_attempt json,
	p_delivered boolean, p_now timestamptz, p_channel text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	d record;
	hold boolean;
	deliver boolean;
BEGIN
	PERFORM 1 FROM events WHERE source = p_source AND id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 1;
	END IF;
	SELECT status, lease_owner, lane_hold INTO d FROM deliveries
		WHERE source = p_source AND id = p_id AND destination = p_destination FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 2;
	END IF;
	deliver := p_delivered AND d.status NOT IN ('reserved', 'held');
	hold := d.lane_hold AND NOT (deliver AND d.lease_owner IS NULL);
	UPDATE deliveries SET attempts = array_append(attempts, p_attempt), replays = replays + 1,
		status = CASE WHEN deliver THEN 'delivered' ELSE status END,
		next_attempt_at = CASE WHEN deliver THEN NULL ELSE next_attempt_at END,
		dead_reason = CASE WHEN deliver THEN NULL ELSE dead_reason END,
		lane_hold = hold, lane_head = lane_head AND hold
		WHERE source = p_source AND id = p_id AND destination = p_destination;
	PERFORM settle(p_source, p_id, p_now);
	RETURN 0;
END $$;

-- skip_delivery settles a dead delivery as skipped, letting its lane go on.
CREATE FUNCTION skip_delivery(p_source text, p_id bytea, p_destination text, p_now timestamptz, p_channel text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	d record;
BEGIN
	PERFORM 1 FROM events WHERE source = p_source AND id = p_id FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 1;
	END IF;
	SELECT status, lane_hold INTO d FROM deliveries
		WHERE source = p_source AND id = p_id AND destination = p_destination FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 2;
	END IF;
	IF d.status <> 'dead' THEN
		RETURN 4;
	END IF;
	UPDATE deliveries SET status = 'skipped', next_attempt_at = NULL, lane_hold = false, lane_head = false
		WHERE source = p_source AND id = p_id AND destination = p_destination;
	PERFORM settle(p_source, p_id, p_now);
	RETURN 0;
END $$;
