package throttle

import (
	"errors"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func mustLimiter(tb testing.TB, rate string, burst int) *Limiter {
	tb.Helper()
	r, err := ParseRate(rate)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := NewLimiter(r, burst)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func TestLimiterBurstThenRate(t *testing.T) {
	l := mustLimiter(t, "50/s", 5)
	n, next := l.Take(t0, 100)
	if n != 5 || !next.Equal(t0.Add(20*time.Millisecond)) {
		t.Fatalf("full bucket: got %d, next %v; want 5, +20ms", n, next.Sub(t0))
	}
	if n, _ := l.Take(t0.Add(19*time.Millisecond), 100); n != 0 {
		t.Fatalf("before the next slot: got %d", n)
	}
	if n, next := l.Take(t0.Add(20*time.Millisecond), 100); n != 1 || !next.Equal(t0.Add(40*time.Millisecond)) {
		t.Fatalf("at the next slot: got %d, next %v", n, next.Sub(t0))
	}
	// After a long idle time the bucket holds its burst, not more.
	if n, next := l.Take(t0.Add(time.Hour), 100); n != 5 || !next.Equal(t0.Add(time.Hour+20*time.Millisecond)) {
		t.Fatalf("after an hour: got %d, next %v", n, next.Sub(t0))
	}
}

func TestLimiterTakeLessThanAvailable(t *testing.T) {
	l := mustLimiter(t, "10/s", 4)
	if n, next := l.Take(t0, 3); n != 3 || !next.Equal(t0) {
		t.Fatalf("got %d, next %v; want 3, now (one more is available)", n, next.Sub(t0))
	}
	if got := l.Available(t0); got != 1 {
		t.Fatalf("Available = %d, want 1", got)
	}
	if n, _ := l.Take(t0, 0); n != 0 {
		t.Fatalf("Take(0) = %d", n)
	}
	if n, _ := l.Take(t0, -3); n != 0 {
		t.Fatalf("Take(-3) = %d", n)
	}
}

func TestLimiterRefund(t *testing.T) {
	l := mustLimiter(t, "10/s", 4)
	if n, _ := l.Take(t0, 4); n != 4 {
		t.Fatal(n)
	}
	l.Refund(3) // the claim found one delivery
	if got := l.Available(t0); got != 3 {
		t.Fatalf("after a refund of 3: Available = %d, want 3", got)
	}
	// A refund never lets the bucket hold more than its burst.
	l.Refund(100)
	if got := l.Available(t0.Add(time.Second)); got != 4 {
		t.Fatalf("after a large refund: Available = %d, want the burst 4", got)
	}
	l.Refund(0)
	l.Refund(-1)
	if got := l.Available(t0.Add(time.Second)); got != 4 {
		t.Fatalf("Available = %d", got)
	}
}

// TestLimiterDrainsAtRate runs a claim loop over a fake clock that always
// wakes at the time Take names, over a backlog larger than the window can
// carry: the count started is the burst plus one per interval, exactly.
func TestLimiterDrainsAtRate(t *testing.T) {
	for _, tt := range []struct {
		rate   string
		burst  int
		window time.Duration
		want   int
	}{
		{"50/s", 0, 60 * time.Second, 5 + 3000},
		{"100/m", 0, 10 * time.Minute, 1 + 1000},
		{"7/s", 3, 30 * time.Second, 3 + 210},
		{"1000/s", 0, 10 * time.Second, 50 + 10000},
	} {
		l := mustLimiter(t, tt.rate, tt.burst)
		now, end, started, passes := t0, t0.Add(tt.window), 0, 0
		for !now.After(end) {
			n, next := l.Take(now, 32)
			started += n
			passes++
			if n == 0 && !next.After(now) {
				t.Fatalf("%s: nothing granted, yet the next start is now", tt.rate)
			}
			if next.After(now) {
				now = next
			}
		}
		if started != tt.want {
			t.Errorf("%s burst %d over %s: started %d, want %d", tt.rate, l.Burst(), tt.window, started, tt.want)
		}
		if passes > 2*tt.want {
			t.Errorf("%s: %d passes for %d starts: the loop spins", tt.rate, passes, started)
		}
	}
}

func TestDefaultBurst(t *testing.T) {
	for rate, want := range map[string]int{"50/s": 5, "100/m": 1, "1/s": 1, "10/s": 1, "200/s": 20, "100000/s": MaxDefaultBurst} {
		if got := mustLimiter(t, rate, 0).Burst(); got != want {
			t.Errorf("%s: burst %d, want %d", rate, got, want)
		}
	}
}

func TestNewLimiterErrors(t *testing.T) {
	for _, c := range []struct {
		r     Rate
		burst int
	}{
		{Rate{}, 1}, {Rate{Events: 1}, 1}, {Rate{Events: 1, Per: -time.Second}, 1},
		{Rate{Events: 10, Per: time.Second}, -1}, {Rate{Events: 10, Per: time.Second}, MaxBurst + 1},
	} {
		if _, err := NewLimiter(c.r, c.burst); !errors.Is(err, ErrBadRate) {
			t.Errorf("NewLimiter(%+v, %d) = %v, want ErrBadRate", c.r, c.burst, err)
		}
	}
}

// TestLimiterConcurrent has many claimers take at the same instants: the
// total granted is what one claimer would get, never more.
func TestLimiterConcurrent(t *testing.T) {
	l := mustLimiter(t, "100/s", 10)
	var mu sync.Mutex
	total := 0
	for step := range 50 {
		now := t0.Add(time.Duration(step) * 100 * time.Millisecond)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5 {
					n, _ := l.Take(now, 3)
					if n > 0 {
						l.Refund(n / 3) // some claims find less than granted
					}
					mu.Lock()
					total += n - n/3
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// What the last refunds gave back is still there at this instant.
		n, _ := l.Take(now, 100)
		total += n
	}
	// 10 at the start, then 10 per 100 ms step for 49 steps.
	if want := 10 + 49*10; total != want {
		t.Fatalf("started %d, want %d", total, want)
	}
}

func BenchmarkLimiterTake(b *testing.B) {
	l := mustLimiter(b, "1000000/s", 100)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		l.Take(now, 1)
	}
}

func BenchmarkLimiterTakeParallel(b *testing.B) {
	l := mustLimiter(b, "1000000/s", 100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(time.Microsecond)
			l.Take(now, 1)
		}
	})
}
