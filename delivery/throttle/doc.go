// Package throttle protects a destination's backend: a Limiter spaces its
// deliveries at a configured rate, and a Breaker pauses it after
// consecutive failures and probes it with one attempt per cooldown until
// it answers again. Both are plain state machines: every method takes the
// current time, so the delivery engine passes its clock and tests advance
// a fake one; neither sleeps, waits or starts a goroutine. Both are safe
// for concurrent use.
//
// How the engine uses them, per destination, in its claim loop:
//
//	switch breaker.Allow(now) {
//	case throttle.Deny:
//		// Paused: claim nothing; look again at breaker.Snapshot().NextProbe.
//	case throttle.Probe:
//		// Claim exactly one delivery and send it as the probe. If there is
//		// none to send, breaker.CancelProbe(now).
//	case throttle.Pass:
//		n, next := limiter.Take(now, batch)
//		// Claim up to n deliveries; limiter.Refund(m) for the m of them
//		// that were not there. Look again at next.
//	}
//	// For every attempt's outcome: breaker.Record(now, ok)
//
// While a destination is open (paused) the engine claims none of its
// deliveries except the probe, so their attempts and max_age are not spent:
// a destination outage, however long, kills no event. The probe is a real
// delivery; its attempt counts. When a probe succeeds the breaker closes
// and the backlog goes out at once, paced by the Limiter rather than by
// each delivery's own backoff schedule, which the engine disregards for a
// destination that was open (those deliveries were held back by the pause,
// not failing on their own).
//
// What counts as a failure is the engine's call: a connection that could
// not be made, a timeout, a 5xx or 429 answer say the backend is not taking
// deliveries; another 4xx says it is up and refused that one event, and is
// recorded as a success for the breaker's purpose.
//
// Both are per process. With several gateways on one PostgreSQL store each
// gateway limits its own sending, so a destination's total rate is up to
// the number of gateways times its rate, and each gateway's breaker opens
// on the failures it sees itself.
package throttle
