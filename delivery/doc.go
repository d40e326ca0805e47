// Package delivery sends canonical events to the merchant's backend: the
// headers every delivery carries (sync and async alike), the Standard
// Webhooks signature, the retry policy and the asynchronous delivery engine.
//
// One header contract. HeaderBuilder.Build is the only place delivery
// headers are made: the sync path passes its result to reverse_proxy, the
// Engine sends it itself. A delivery carries
//
//	Content-Type: application/cloudevents+json
//	Idempotency-Key: <event id>          same on every attempt and replay
//	Webhook-Attempt: <n>                 1, 2, ...; replays continue the count
//	Webhook-Replay: true                 only on an operator's replay
//	User-Agent: caddy-webhook-gateway
//	webhook-id, webhook-timestamp,       with a signing secret (Standard
//	webhook-signature: v1,<base64>       Webhooks; id = event id)
//	traceparent, tracestate              when the event's request was traced:
//	                                     the W3C context of this attempt's span
//
// and nothing of the provider's request: its headers stay in the store.
//
// Traces (trace.go). An event stored by a traced request keeps the trace
// context of its ingest span (store.Record.TraceParent, and in its body the
// CloudEvents distributed tracing extension). Each attempt and each replay
// of it is then a span of that trace, a child of the ingest span, made with
// the TracerProvider of Config.Tracing, and the request to the backend
// carries that span's traceparent so the backend's spans join the trace.
//
// Async delivery (Engine). All state is in the store: workers claim due
// events under a lease, send one attempt, and record it durably together
// with the next status. So a restart resumes pending work, a crashed
// engine's events come back when its leases expire, and two engines on one
// store (old and new config during a Caddy reload) never send the same
// attempt twice. An outcome the store does not take (a database restart) is
// written again, with backoff, while the engine holds the event's lease, so
// a restart shorter than what is left of the lease sends nothing twice.
// Delivery is at least once: an attempt whose outcome could not be recorded
// before the lease ran out (or before Stop gave up) is sent again, with the
// same Idempotency-Key.
//
// Upstreams: attempts rotate over the configured URLs (round-robin); when
// a connection cannot be made the same attempt fails over to the next URL.
// A request that may have been sent (a timeout after connecting) is not
// sent elsewhere within the attempt.
//
// Retries: see Backoff. 2xx is delivered, 410 Gone is dead at once,
// anything else is retried with exponential backoff and full jitter, at
// least as late as the backend's Retry-After, until MaxAttempts or MaxAge.
//
// Replay is synchronous: Engine.Replay sends now, waits for the answer and
// returns it, so the operator sees the outcome; see its doc for how it
// changes the stored status.
package delivery
