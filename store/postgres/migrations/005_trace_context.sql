-- The W3C trace context of the gateway's span for the request that brought
-- an event (traceparent, tracestate), so that its delivery attempts and
-- replays, by any gateway sharing the database, are spans of that trace.
-- NULL for an event of an untraced route and for events stored before this
-- version, whose deliveries are then not traced.
ALTER TABLE events ADD COLUMN traceparent text, ADD COLUMN tracestate text;

-- insert_event as in version 4, storing the trace context too.
DROP FUNCTION insert_event(text, bytea, text, text, text, timestamptz, bytea, bytea, bytea, bigint,
	integer, integer, timestamptz, timestamptz, bigint, timestamptz, bytea, bigint, timestamptz, text, text);
CREATE FUNCTION insert_event(
	p_source text, p_id bytea, p_provider text, p_type text, p_status text,
	p_received_at timestamptz, p_event bytea, p_headers bytea, p_raw_body bytea, p_body_id bigint,
	p_batch_index integer, p_batch_size integer, p_next_attempt_at timestamptz,
	p_reserved_until timestamptz, p_retention_us bigint, p_expires_at timestamptz,
	p_dedup_key bytea, p_dedup_window_us bigint, p_now timestamptz, p_destination text, p_subject text,
	p_traceparent text, p_tracestate text,
	OUT inserted boolean, OUT existing_status text, OUT existing_id bytea
) LANGUAGE plpgsql AS $$
DECLARE
	cur record;
	held record;
	carried bytea[] := '{}';
BEGIN
	inserted := false;
	SELECT status, reserved_until, expires_at, attempts INTO cur FROM events
		WHERE source = p_source AND id = p_id FOR UPDATE;
	IF FOUND THEN
		IF cur.status = 'released' AND (cur.expires_at IS NULL OR cur.expires_at > p_now) THEN
			carried := cur.attempts;
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
	INSERT INTO events (source, id, provider, type, status, received_at, event, headers,
		raw_body, body_id, batch_index, batch_size, next_attempt_at, reserved_until, retention_us,
		expires_at, dedup_key, dedup_window_us, destination, subject, attempts, traceparent, tracestate)
	VALUES (p_source, p_id, p_provider, p_type, p_status, p_received_at, p_event, p_headers,
		p_raw_body, p_body_id, p_batch_index, p_batch_size, p_next_attempt_at, p_reserved_until, p_retention_us,
		p_expires_at, p_dedup_key, p_dedup_window_us, p_destination, NULLIF(p_subject, ''), carried,
		NULLIF(p_traceparent, ''), NULLIF(p_tracestate, ''))
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
