package throttle

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustBreaker(tb testing.TB, cfg BreakerConfig) *Breaker {
	tb.Helper()
	b, err := NewBreaker(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func fail(tb testing.TB, b *Breaker, now time.Time, times int) {
	tb.Helper()
	for range times {
		b.Record(now, false)
	}
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 3})
	now := t0
	fail(t, b, now, 2)
	if _, changed := b.Record(now, true); changed {
		t.Fatal("a success while closed changed the state")
	}
	fail(t, b, now, 2) // not consecutive with the first two
	if s := b.Snapshot(); s.State != Closed || s.Failures != 2 {
		t.Fatalf("got %+v, want closed with 2 failures", s)
	}
	if p := b.Allow(now); p != Pass {
		t.Fatalf("closed: Allow = %v", p)
	}
	now = now.Add(time.Second)
	s, changed := b.Record(now, false)
	if !changed || s.State != Open || !s.Since.Equal(now) || !s.OpenedAt.Equal(now) || s.Opens != 1 ||
		s.Cooldown != DefaultCooldown || !s.NextProbe.Equal(now.Add(DefaultCooldown)) || s.Failures != 3 {
		t.Fatalf("third failure: changed %v, %+v", changed, s)
	}
}

func TestBreakerProbesWithGrowingCooldown(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 1, Cooldown: 5 * time.Second, MaxCooldown: time.Minute})
	failedAt := t0
	b.Record(failedAt, false)
	// Each wait runs from the failure that opened the breaker again.
	for i, wait := range []time.Duration{5, 10, 20, 40, 60, 60, 60} {
		wait *= time.Second
		if p := b.Allow(failedAt.Add(wait - time.Nanosecond)); p != Deny {
			t.Fatalf("probe %d: Allow before the cooldown = %v", i, p)
		}
		probeAt := failedAt.Add(wait)
		if p := b.Allow(probeAt); p != Probe {
			t.Fatalf("probe %d: Allow after %s = %v, want probe", i, wait, p)
		}
		if s := b.Snapshot(); s.State != HalfOpen || !s.Since.Equal(probeAt) {
			t.Fatalf("probe %d: %+v, want half-open since the probe", i, s)
		}
		// One probe at a time: everyone else is denied.
		if p := b.Allow(probeAt); p != Deny {
			t.Fatalf("probe %d: second Allow = %v", i, p)
		}
		failedAt = probeAt.Add(time.Second) // the probe's attempt takes a second
		s, changed := b.Record(failedAt, false)
		if !changed || s.State != Open || !s.OpenedAt.Equal(t0) || s.Opens != 1 {
			t.Fatalf("probe %d failed: changed %v, %+v", i, changed, s)
		}
		if next := min(2*wait, time.Minute); s.Cooldown != next || !s.NextProbe.Equal(failedAt.Add(next)) {
			t.Fatalf("probe %d failed: cooldown %s, next probe in %s; want %s", i, s.Cooldown, s.NextProbe.Sub(failedAt), next)
		}
	}
}

func TestBreakerSuccessClosesAndResets(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 2, Cooldown: time.Second, MaxCooldown: 8 * time.Second})
	now := t0
	fail(t, b, now, 2)
	for range 3 { // grow the cooldown to 8s
		now = b.Snapshot().NextProbe
		if b.Allow(now) != Probe {
			t.Fatal("no probe")
		}
		b.Record(now, false)
	}
	if c := b.Snapshot().Cooldown; c != 8*time.Second {
		t.Fatalf("cooldown %s", c)
	}
	now = b.Snapshot().NextProbe
	if b.Allow(now) != Probe {
		t.Fatal("no probe")
	}
	s, changed := b.Record(now, true)
	if !changed || s.State != Closed || s.Failures != 0 || s.Cooldown != 0 || !s.NextProbe.IsZero() || !s.OpenedAt.IsZero() || !s.Since.Equal(now) {
		t.Fatalf("after the probe's success: changed %v, %+v", changed, s)
	}
	if b.Allow(now) != Pass {
		t.Fatal("closed breaker denies")
	}
	// Opening again starts from the minimum cooldown and counts anew.
	b.Record(now, false)
	if s := b.Snapshot(); s.State != Closed {
		t.Fatalf("one failure opened it: %+v", s)
	}
	s, _ = b.Record(now, false)
	if s.State != Open || s.Cooldown != time.Second || s.Opens != 2 {
		t.Fatalf("reopened: %+v", s)
	}
}

// TestBreakerLateOutcomes: attempts started before the breaker opened end
// while it is open. A late failure changes nothing; a late success closes
// it, since the backend answered.
func TestBreakerLateOutcomes(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 1})
	b.Record(t0, false)
	before := b.Snapshot()
	if s, changed := b.Record(t0.Add(time.Second), false); changed || s.NextProbe != before.NextProbe || s.Cooldown != before.Cooldown || s.Failures != 2 {
		t.Fatalf("late failure: changed %v, %+v", changed, s)
	}
	if s, changed := b.Record(t0.Add(2*time.Second), true); !changed || s.State != Closed {
		t.Fatalf("late success: changed %v, %+v", changed, s)
	}
}

func TestBreakerCancelProbe(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 1, Cooldown: 10 * time.Second})
	b.Record(t0, false)
	now := t0.Add(10 * time.Second)
	if b.Allow(now) != Probe {
		t.Fatal("no probe")
	}
	b.CancelProbe(now) // nothing to send
	if s := b.Snapshot(); s.State != Open || !s.NextProbe.Equal(now) || s.Cooldown != 10*time.Second {
		t.Fatalf("after CancelProbe: %+v", s)
	}
	later := now.Add(time.Minute)
	if b.Allow(later) != Probe {
		t.Fatal("no probe once a delivery comes")
	}
	// CancelProbe is a no-op unless a probe is out.
	b.Record(later, true)
	b.CancelProbe(later)
	if s := b.Snapshot(); s.State != Closed {
		t.Fatalf("CancelProbe on a closed breaker: %+v", s)
	}
}

// TestBreakerLostProbe: a probe whose outcome never comes (the engine
// stopped mid-attempt) does not pause the destination for good.
func TestBreakerLostProbe(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 1, Cooldown: time.Second, MaxCooldown: 30 * time.Second})
	b.Record(t0, false)
	now := t0.Add(time.Second)
	if b.Allow(now) != Probe {
		t.Fatal("no probe")
	}
	if p := b.Allow(now.Add(30*time.Second - time.Nanosecond)); p != Deny {
		t.Fatalf("while the probe is out: %v", p)
	}
	if p := b.Allow(now.Add(30 * time.Second)); p != Probe {
		t.Fatalf("after MaxCooldown without an outcome: %v, want a new probe", p)
	}
	if s := b.Snapshot(); s.State != HalfOpen || !s.NextProbe.Equal(now.Add(60*time.Second)) {
		t.Fatalf("%+v", s)
	}
}

func TestBreakerConfig(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{})
	if c := b.Config(); c != (BreakerConfig{DefaultFailures, DefaultCooldown, DefaultMaxCooldown}) {
		t.Fatalf("defaults: %+v", c)
	}
	if c := mustBreaker(t, BreakerConfig{Cooldown: 5 * time.Minute}).Config(); c.MaxCooldown != 5*time.Minute {
		t.Fatalf("a cooldown above the default max: %+v", c)
	}
	for _, tt := range []struct {
		cfg  BreakerConfig
		want string
	}{
		{BreakerConfig{Failures: -1}, "failures -1 is not at least 1"},
		{BreakerConfig{Cooldown: -time.Second}, "must be positive"},
		{BreakerConfig{MaxCooldown: -time.Second}, "must be positive"},
		{BreakerConfig{Cooldown: time.Minute, MaxCooldown: time.Second}, "max_cooldown 1s is shorter than cooldown 1m0s"},
	} {
		_, err := NewBreaker(tt.cfg)
		if !errors.Is(err, ErrBadBreaker) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestSnapshotJSON(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 1, Cooldown: time.Second})
	out, _ := json.Marshal(b.Snapshot())
	if string(out) != `{"state":"closed","failures":0,"opens":0}` {
		t.Fatalf("closed: %s", out)
	}
	s, _ := b.Record(t0, false)
	out, _ = json.Marshal(s)
	want := `{"state":"open","since":"2026-12-07T12:00:00Z","opened_at":"2026-12-07T12:00:00Z","failures":1,"cooldown":1000000000,"next_probe":"2026-12-07T12:00:01Z","opens":1}`
	if string(out) != want {
		t.Fatalf("open:\n got %s\nwant %s", out, want)
	}
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", 7: "State(7)"} {
		if s.String() != want {
			t.Errorf("%d: %q", int(s), s.String())
		}
	}
	for p, want := range map[Permit]string{Deny: "deny", Pass: "pass", Probe: "probe", 9: "Permit(9)"} {
		if p.String() != want {
			t.Errorf("%d: %q", int(p), p.String())
		}
	}
}

// TestBreakerConcurrent has many workers ask for permits and record
// outcomes at shared fake instants while the backend is down, then up:
// never more than one probe is granted per half-open period, and the
// breaker ends closed.
func TestBreakerConcurrent(t *testing.T) {
	b := mustBreaker(t, BreakerConfig{Failures: 5, Cooldown: time.Second, MaxCooldown: 4 * time.Second})
	var clock atomic.Int64 // nanoseconds after t0
	now := func() time.Time { return t0.Add(time.Duration(clock.Load())) }
	var probes, passes atomic.Int64
	var up atomic.Bool
	run := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 200 {
					switch b.Allow(now()) {
					case Probe:
						probes.Add(1)
						b.Record(now(), up.Load())
					case Pass:
						passes.Add(1)
						b.Record(now(), up.Load())
					}
				}
			})
		}
		wg.Wait()
	}
	for step := range 20 { // down for 20 s, one instant per second
		clock.Store(int64(time.Duration(step) * time.Second))
		run()
	}
	if s := b.Snapshot(); s.State == Closed || s.Opens != 1 {
		t.Fatalf("down: %+v", s)
	}
	// Only the first failures before opening passed; while open, at most
	// one probe per instant (fewer once the cooldown grows past 1s).
	if p := passes.Load(); p > 5+8 {
		t.Fatalf("%d attempts passed while the backend was down", p)
	}
	if p := probes.Load(); p < 5 || p > 19 {
		t.Fatalf("%d probes in 20 s", p)
	}
	up.Store(true)
	clock.Store(int64(time.Minute))
	run()
	if s := b.Snapshot(); s.State != Closed {
		t.Fatalf("up: %+v", s)
	}
}

func BenchmarkBreakerAllowClosed(b *testing.B) {
	br := mustBreaker(b, BreakerConfig{})
	b.ReportAllocs()
	for b.Loop() {
		br.Allow(t0)
	}
}

func BenchmarkBreakerAllowOpen(b *testing.B) {
	br := mustBreaker(b, BreakerConfig{Failures: 1})
	br.Record(t0, false)
	b.ReportAllocs()
	for b.Loop() {
		br.Allow(t0)
	}
}

func BenchmarkBreakerRecord(b *testing.B) {
	br := mustBreaker(b, BreakerConfig{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		br.Record(t0, i%4 != 0) // closed: a failure now and then, never 5 in a row
	}
}

func BenchmarkBreakerAllowRecordParallel(b *testing.B) {
	br := mustBreaker(b, BreakerConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if br.Allow(t0) == Pass {
				br.Record(t0, true)
			}
		}
	})
}
