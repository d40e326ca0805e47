package delivery

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/delivery/throttle"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/storetest"
)

// waitPasses waits until the engine's claim loop has made n more passes:
// what it was going to claim by then, it has.
func waitPasses(t *testing.T, e *Engine, n int64) {
	t.Helper()
	from := e.passes.Load()
	testwait.For(t, fmt.Sprintf("%d claim passes", n), func() bool { return e.passes.Load() >= from+n })
}

// TestOutagePausesAndKillsNoEvent: a backend down for ten minutes, ten
// times the events' max_age and with probes enough to exhaust their
// attempts three times over, gets one attempt per cooldown, kills no
// event, and once it is back every event is due at once, none on a
// backoff (an hour at most here, so a missed cap would show).
func TestOutagePausesAndKillsNoEvent(t *testing.T) {
	st := openStore(t)
	var up atomic.Bool
	be := newBackend(t, func(hit, int) (int, map[string]string) {
		if up.Load() {
			return http.StatusNoContent, nil
		}
		return http.StatusServiceUnavailable, nil
	})
	ids := []string{"evt-0", "evt-1", "evt-2", "evt-3", "evt-4"}
	insert(t, st, ids...)
	clock := storetest.NewClock()
	began := clock.Now()
	obs := &observer{}
	cfg := fast(t, st, be.srv.URL)
	cfg.Workers, cfg.Now, cfg.Observer = 1, clock.Now, obs
	cfg.Backoff = Backoff{InitialDelay: time.Hour, MaxDelay: time.Hour, MaxAttempts: 3, MaxAge: time.Minute}
	cfg.Breaker = throttle.BreakerConfig{Failures: 1, Cooldown: 10 * time.Second, MaxCooldown: 40 * time.Second}
	e := start(t, cfg)
	e.Notify()

	testwait.For(t, "the first failed attempt", func() bool { return be.count() == 1 })
	testwait.For(t, "the breaker open", func() bool { return e.Breaker().State == throttle.Open })
	waitPasses(t, e, 2)
	if n := be.count(); n != 1 {
		t.Fatalf("%d requests after the breaker opened, want 1", n)
	}
	probes := 0
	for clock.Now().Before(began.Add(10 * time.Minute)) {
		clock.Advance(e.Breaker().NextProbe.Sub(clock.Now()))
		e.Notify()
		probes++
		testwait.For(t, fmt.Sprintf("probe %d", probes), func() bool { return be.count() == 1+probes })
		testwait.For(t, "the probe's failure", func() bool {
			s := e.Breaker()
			return s.State == throttle.Open && s.NextProbe.After(clock.Now())
		})
		waitPasses(t, e, 2)
		if n := be.count(); n != 1+probes {
			t.Fatalf("after probe %d: %d requests, want %d", probes, n, 1+probes)
		}
	}
	// Cooldowns 10, 20, 40, 40, ...: 16 probes in ten minutes.
	if probes < 10 || probes > 20 {
		t.Errorf("%d probes in ten minutes", probes)
	}
	if n := obs.dead.Load(); n != 0 {
		t.Fatalf("%d events dead during the outage", n)
	}

	up.Store(true)
	clock.Advance(e.Breaker().NextProbe.Sub(clock.Now()))
	e.Notify()
	for _, id := range ids {
		rec := waitStatus(t, st, id, store.StatusDelivered)
		if len(rec.Deliveries[0].Attempts) < 2 && id == ids[0] {
			t.Errorf("%s: attempts %+v", id, rec.Deliveries[0].Attempts)
		}
	}
	if s := e.Breaker(); s.State != throttle.Closed || s.Opens != 1 {
		t.Errorf("breaker after recovery: %+v", s)
	}
	if n, want := be.count(), 1+probes+len(ids); n != want {
		t.Errorf("backend saw %d requests, want %d (one failure, %d probes, one delivery each)", n, want, probes)
	}
}

// TestRateLimitsClaims: with the engine's clock standing still, only the
// rate's burst (1 at 10/s) goes out; each tenth of a second of the clock
// lets out one more, however many workers are free.
func TestRateLimitsClaims(t *testing.T) {
	st := openStore(t)
	be := newBackend(t, nil)
	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprintf("evt-%02d", i))
	}
	insert(t, st, ids...)
	clock := storetest.NewClock()
	cfg := fast(t, st, be.srv.URL)
	cfg.Now = clock.Now
	cfg.Rate = throttle.Rate{Events: 10, Per: time.Second} // burst 1
	e := start(t, cfg)
	e.Notify()
	for want := 1; want <= 20; want++ {
		testwait.For(t, fmt.Sprintf("%d deliveries", want), func() bool { return be.count() == want })
		waitPasses(t, e, 2)
		if n := be.count(); n != want {
			t.Fatalf("%d deliveries after %d steps of the clock, want %d", n, want-1, want)
		}
		clock.Advance(100 * time.Millisecond)
		e.Notify()
	}
}

// TestDecideAroundPauses: probes and paused time do not count toward
// max attempts and max age; a probe never kills an event; a failure while
// paused is due again by the next probe.
func TestDecideAroundPauses(t *testing.T) {
	newEngine := func(delay ...time.Duration) *Engine {
		d := time.Second
		if len(delay) > 0 {
			d = delay[0]
		}
		e, err := New(Config{Store: openStore(t), Destination: testSource, Upstreams: []string{"http://127.0.0.1:1"},
			Backoff: Backoff{InitialDelay: d, MaxDelay: d, MaxAttempts: 3, MaxAge: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	t0 := time.Now()
	rec := &store.Record{ReceivedAt: t0}
	d := &store.Delivery{Attempts: []store.Attempt{
		{Number: 1, At: t0}, // before the pause
		{Number: 2, At: t0.Add(time.Minute)}, {Number: 3, At: t0.Add(2 * time.Minute)}, {Number: 4, At: t0.Add(5 * time.Minute)},
	}}
	failed := sendResult{Attempt: store.Attempt{Status: http.StatusServiceUnavailable}}
	closed := throttle.Snapshot{State: throttle.Closed}
	now := t0.Add(10*time.Minute + 20*time.Second)

	paused := newEngine()
	paused.pauses.open(t0.Add(10 * time.Second))
	paused.pauses.close(t0.Add(10 * time.Minute))
	// Two attempts and 30 s of age spent: a retry.
	if dec := paused.decide(rec, d, failed, false, closed, now); dec.Status != store.StatusRetrying {
		t.Fatalf("after a pause: %+v, want a retry", dec)
	}
	// The same history without the pause: dead.
	if dec := newEngine().decide(rec, d, failed, false, closed, now); dec.Status != store.StatusDead {
		t.Fatalf("without the pause: %+v, want dead", dec)
	}

	// A failed probe of an event past both limits: due at the next probe.
	open := throttle.Snapshot{State: throttle.Open, NextProbe: now.Add(40 * time.Second)}
	dec := newEngine().decide(rec, d, failed, true, open, now)
	if dec.Status != store.StatusRetrying || !dec.NextAttemptAt.Equal(open.NextProbe) {
		t.Fatalf("failed probe: %+v, want a retry at the next probe %s", dec, open.NextProbe)
	}
	// 410 to a probe: the backend answered, the event is gone.
	gone := sendResult{Attempt: store.Attempt{Status: http.StatusGone}}
	if dec := newEngine().decide(rec, d, gone, true, closed, now); dec.Status != store.StatusDead || dec.Reason != store.DeadGone {
		t.Fatalf("410 to a probe: %+v", dec)
	}
	// A counted failure that left the breaker open: its hour of backoff is
	// cut to the next probe.
	fresh := &store.Record{ReceivedAt: now}
	dec = newEngine(time.Hour).decide(fresh, &store.Delivery{}, failed, false, open, now)
	if dec.Status != store.StatusRetrying || dec.NextAttemptAt.After(open.NextProbe) {
		t.Fatalf("failure while open: %+v, want a retry by %s", dec, open.NextProbe)
	}
}

func TestBreakerFailure(t *testing.T) {
	for status, want := range map[int]bool{0: true, 500: true, 503: true, 429: true, 400: false, 404: false, 410: false, 200: false, 302: false} {
		if got := BreakerFailure(status); got != want {
			t.Errorf("BreakerFailure(%d) = %v", status, got)
		}
	}
}
