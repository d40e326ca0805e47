package throttle

import (
	"testing"
	"time"
)

// TestClaimLoopOutage runs the claim loop the package documentation
// describes, over a fake clock, against a backend that refuses everything
// for ten minutes (far longer than a delivery's max_age would allow if
// every attempt counted) with a backlog of 1,000 deliveries: the attempts
// made while it is down are the few before the breaker opens plus one
// probe per cooldown, no delivery spends more than a couple of attempts,
// and once the backend is back the backlog goes out at the rate.
func TestClaimLoopOutage(t *testing.T) {
	const backlog, batch = 1000, 32
	rate := Rate{Events: 50, Per: time.Second}
	lim, err := NewLimiter(rate, 0)
	if err != nil {
		t.Fatal(err)
	}
	br := mustBreaker(t, BreakerConfig{Failures: 5, Cooldown: time.Second, MaxCooldown: 30 * time.Second})
	upAt := t0.Add(10 * time.Minute)

	queue := make([]int, backlog) // attempts made per pending delivery, in claim order
	var (
		now                      = t0
		attemptsDown, probes     int
		closedAt, drainedAt      time.Time
		maxAttempts, claimPasses int
	)
	send := func() bool { // one attempt of the head delivery
		queue[0]++
		maxAttempts = max(maxAttempts, queue[0])
		ok := !now.Before(upAt)
		if !ok {
			attemptsDown++
		}
		if s, changed := br.Record(now, ok); changed && s.State == Closed {
			closedAt = now
		}
		if ok {
			queue = queue[1:]
		} else {
			queue = append(queue[1:], queue[0]) // retried later, behind the others
		}
		return ok
	}
	for len(queue) > 0 && now.Before(t0.Add(time.Hour)) {
		claimPasses++
		switch br.Allow(now) {
		case Deny:
			now = br.Snapshot().NextProbe
		case Probe:
			probes++
			send()
			now = now.Add(time.Millisecond)
		case Pass:
			n, next := lim.Take(now, batch)
			for i := 0; i < n && len(queue) > 0; i++ {
				send()
			}
			if len(queue) == 0 {
				drainedAt = now
			}
			if next.After(now) {
				now = next
			} else {
				now = now.Add(time.Millisecond)
			}
		}
	}
	t.Logf("%d attempts while down (%d probes), closed %s after recovery, drained in %s, %d claim passes",
		attemptsDown, probes, closedAt.Sub(upAt), drainedAt.Sub(closedAt), claimPasses)
	if len(queue) != 0 {
		t.Fatalf("%d deliveries left after an hour", len(queue))
	}
	// 5 failures open the breaker; then probes at cooldowns 1, 2, 4, 8,
	// 16 s and every 30 s after: about 25 in ten minutes.
	if probes < 15 || probes > 30 || attemptsDown > 5+probes {
		t.Errorf("%d attempts while down, %d of them probes", attemptsDown, probes)
	}
	if maxAttempts > 3 {
		t.Errorf("a delivery made %d attempts", maxAttempts)
	}
	if closedAt.Before(upAt) || closedAt.After(upAt.Add(30*time.Second)) {
		t.Errorf("closed %s after the backend came back", closedAt.Sub(upAt))
	}
	// The backlog (less the probe and the burst) at 50/s: 19.8 s.
	want := time.Duration(backlog-1-lim.Burst()) * time.Second / 50
	if got := drainedAt.Sub(closedAt); got < want-time.Second/50 || got > want+time.Second/50 {
		t.Errorf("backlog drained in %s, want %s at %s", got, want, rate)
	}
	if claimPasses > 3*backlog {
		t.Errorf("%d claim passes", claimPasses)
	}
}
