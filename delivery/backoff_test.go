package delivery

import (
	"net/http"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func TestBackoffCeiling(t *testing.T) {
	b := Backoff{InitialDelay: time.Second, MaxDelay: time.Minute}
	for n, want := range map[int]time.Duration{
		1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second,
		7: time.Minute, 1000: time.Minute,
	} {
		if got := b.Ceiling(n); got != want {
			t.Errorf("Ceiling(%d) = %s, want %s", n, got, want)
		}
	}
	for range 1000 {
		if d := b.Delay(3); d < 0 || d > 4*time.Second {
			t.Fatalf("Delay(3) = %s, outside [0, 4s]", d)
		}
	}
	if got := (Backoff{}).Ceiling(100); got != DefaultMaxDelay {
		t.Errorf("default ceiling = %s", got)
	}
}

func TestBackoffDecide(t *testing.T) {
	b := Backoff{InitialDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond,
		MaxRetryAfter: 5 * time.Second, MaxAttempts: 3, MaxAge: time.Hour}
	now := time.Now()
	recv := now.Add(-time.Minute)
	tests := []struct {
		name     string
		out      Outcome
		attempts int
		recv     time.Time
		want     store.Status
		minDelay time.Duration
		maxDelay time.Duration
	}{
		{"200", Outcome{Status: 200}, 1, recv, store.StatusDelivered, 0, 0},
		{"204", Outcome{Status: 204}, 3, recv, store.StatusDelivered, 0, 0},
		{"410 first attempt", Outcome{Status: 410}, 1, recv, store.StatusDead, 0, 0},
		{"500 retried", Outcome{Status: 500}, 1, recv, store.StatusRetrying, 0, 10 * time.Millisecond},
		{"network error retried", Outcome{}, 2, recv, store.StatusRetrying, 0, 20 * time.Millisecond},
		{"404 retried", Outcome{Status: 404}, 1, recv, store.StatusRetrying, 0, 10 * time.Millisecond},
		{"302 retried", Outcome{Status: 302}, 1, recv, store.StatusRetrying, 0, 10 * time.Millisecond},
		{"retry-after wins", Outcome{Status: 429, RetryAfter: time.Second}, 1, recv, store.StatusRetrying, time.Second, time.Second},
		{"retry-after capped", Outcome{Status: 503, RetryAfter: time.Hour}, 1, recv, store.StatusRetrying, 5 * time.Second, 5 * time.Second},
		{"last attempt", Outcome{Status: 500}, 3, recv, store.StatusDead, 0, 0},
		{"too old", Outcome{Status: 500}, 1, now.Add(-2 * time.Hour), store.StatusDead, 0, 0},
		{"retry-after past max age", Outcome{Status: 503, RetryAfter: 5 * time.Second}, 1, now.Add(-time.Hour + time.Second), store.StatusDead, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := b.Decide(tc.out, tc.attempts, tc.recv, now)
			if d.Status != tc.want {
				t.Fatalf("status = %s, want %s (%s)", d.Status, tc.want, d.Reason)
			}
			if d.Status == store.StatusDead && (d.Reason == "" || d.Detail == "") {
				t.Error("dead without a reason")
			}
			if d.Status != store.StatusRetrying {
				if !d.NextAttemptAt.IsZero() {
					t.Errorf("NextAttemptAt set on %s", d.Status)
				}
				return
			}
			delay := d.NextAttemptAt.Sub(now)
			if delay < tc.minDelay || delay > tc.maxDelay {
				t.Errorf("delay %s outside [%s, %s]", delay, tc.minDelay, tc.maxDelay)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                     0,
		"5":                    5 * time.Second,
		" 120 ":                2 * time.Minute,
		"0":                    0,
		"-3":                   0,
		"soon":                 0,
		"99999999999999999999": 0, // overflows int64: unparsable
		"9223372036854775807":  time.Duration(1<<63-1) / time.Second * time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
		"Sun, 06 Nov 1994 08:49:37 GMT":                   0,
	}
	for in, want := range tests {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
