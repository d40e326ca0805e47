package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestScheduledAtSpacesRequestsEvenly(t *testing.T) {
	start := time.Unix(1000, 0)
	for i, want := range []time.Duration{0, 250 * time.Microsecond, 500 * time.Microsecond, time.Second} {
		idx := []int64{0, 1, 2, 4000}[i]
		if got := scheduledAt(start, 4000, idx).Sub(start); got != want {
			t.Errorf("request %d at 4000/s: %v after the start, want %v", idx, got, want)
		}
	}
	// A rate that does not divide a second: no drift over many requests.
	if got := scheduledAt(start, 3, 300).Sub(start); got != 100*time.Second {
		t.Errorf("request 300 at 3/s: %v, want 100s", got)
	}
}

func TestScheduledInCountsTheMeasuredWindow(t *testing.T) {
	for _, c := range []struct {
		rate             float64
		warmup, duration time.Duration
		want             int
	}{
		{1000, 2 * time.Second, 5 * time.Second, 5000},
		{3, time.Second, time.Second, 3},
		{1500, 0, 10 * time.Second, 15000},
		{0.5, 0, 3 * time.Second, 2}, // at 0 s and 2 s
	} {
		if got := scheduledIn(c.rate, c.warmup, c.duration); got != c.want {
			t.Errorf("scheduledIn(%v, %v, %v) = %d, want %d", c.rate, c.warmup, c.duration, got, c.want)
		}
	}
}

// Percentiles of one sample or none (TestLatencyPercentiles has many).
func TestLatenciesOfFewSamples(t *testing.T) {
	if l := latencies([]time.Duration{7 * time.Millisecond}); l.P50 != 7 || l.P999 != 7 || l.Max != 7 {
		t.Errorf("one sample: %+v", l)
	}
	if l := latencies(nil); l != (Latency{}) {
		t.Errorf("no samples: %+v", l)
	}
}

// A request that waited in the queue is timed from its scheduled time, not
// from its send: the wait is what the provider saw.
func TestOpenWorkerTimesFromTheSchedule(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	gen, err := NewPayloads([]byte("k"), 1024)
	if err != nil {
		t.Fatal(err)
	}
	p := &pool{gen: gen}
	cfg := config{URL: srv.URL, Timeout: 3 * time.Second, LateAfter: time.Millisecond}
	now := time.Now()
	jobs := make(chan openJob, 4)
	jobs <- openJob{i: 0, sched: now.Add(-time.Second)}     // a second behind: late
	jobs <- openJob{i: 1, sched: now.Add(-4 * time.Second)} // past the timeout: missed, not sent
	jobs <- openJob{i: 2, sched: now.Add(-6 * time.Second)} // before the window and past the timeout: dropped
	jobs <- openJob{i: 3, sched: now}                       // after the window: sent, not measured
	close(jobs)
	w := &openWorker{worker: worker{status: map[int]int{}, errs: map[string]int{}}}
	w.loop(context.Background(), cfg, srv.Client(), gen, p, jobs, now.Add(-5*time.Second), now.Add(-time.Second/2))

	if len(w.latencies) != 1 || w.latencies[0] < time.Second || w.lags[0] < time.Second || w.service[0] >= w.latencies[0] {
		t.Fatalf("latencies %v, lags %v, service %v: want one latency of at least the second behind schedule", w.latencies, w.lags, w.service)
	}
	if w.late != 1 || w.missed != 1 || w.acked != 2 || w.status[200] != 1 {
		t.Errorf("late %d missed %d acked %d status %v: want 1, 1, 2 and one measured 200", w.late, w.missed, w.acked, w.status)
	}

	sum := openSummary(config{Rate: 100, Warmup: time.Second, Duration: 2 * time.Second, LateAfter: time.Millisecond, Share: 0.25},
		[]*openWorker{w, {}}, 3)
	if sum.Scheduled != 200 || sum.Late != 1 || sum.Missed != 4 || sum.Share != 0.25 || sum.SendLag.P50 < 1000 {
		t.Errorf("summary %+v", sum)
	}
}

// Every scheduled request of the window is answered, failed or missed:
// nothing is lost between the schedule and the report.
func TestRunOpenAccountsForEveryScheduledRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	gen, err := NewPayloads([]byte("k"), 1024)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{URL: srv.URL, Timeout: 30 * time.Second, LateAfter: time.Millisecond,
		Rate: 500, Concurrency: 4, Warmup: 100 * time.Millisecond, Duration: 200 * time.Millisecond}
	p := &pool{gen: gen}
	start := time.Now()
	ws, unqueued := runOpen(context.Background(), cfg, srv.Client(), gen, p, start, start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration))
	var workers []*worker
	for _, w := range ws {
		workers = append(workers, &w.worker)
	}
	rep := newReport(cfg, workers, gen.BodySize())
	o := openSummary(cfg, ws, unqueued)
	errs := 0
	for _, n := range rep.Errors {
		errs += n
	}
	if got := rep.Requests + rep.Non2xx + errs + o.Missed; got != o.Scheduled || o.Scheduled != 100 {
		t.Errorf("answered %d + non-2xx %d + errors %d + missed %d = %d, scheduled %d (want 100)",
			rep.Requests, rep.Non2xx, errs, o.Missed, got, o.Scheduled)
	}
	if rep.AckedTotal < rep.Requests {
		t.Errorf("acked %d < measured answers %d", rep.AckedTotal, rep.Requests)
	}
}

func TestParseStatus(t *testing.T) {
	st := parseStatus("Name:\tcaddy\nVmHWM:\t  900 kB\nVmRSS:\t  812 kB\nRssAnon:\t 700 kB\nThreads:\t12\n")
	if st["VmRSS"] != 812 || st["RssAnon"] != 700 || st["VmHWM"] != 900 || len(st) != 3 {
		t.Errorf("parseStatus: %v", st)
	}
}

func openRep(scenario string, size int, rate, share float64, p50, p99, us float64) *Report {
	r := rep(scenario, size, 64, 1, rate, p99)
	r.Latency.P50, r.Latency.P999 = p50, 2*p99
	r.Open = &OpenLoop{Rate: rate, Share: share}
	r.ServerCPU = map[string]ProcCPU{"caddy": {MicrosPerRequest: us}}
	return r
}

func TestSummarizeOpenLoopComparesAtTheSameRate(t *testing.T) {
	reps := []*Report{
		rep("a", 1024, 32, 1, 4000, 20), // the capacity run, closed loop
		openRep("a", 1024, 1000, 0.25, 0.5, 1.0, 150),
		openRep("b", 1024, 1000, 0.25, 1.5, 7.0, 500),
		openRep("c", 1024, 1000, 0.25, 1.0, 4.0, 400),
		openRep("a", 1024, 2000, 0.5, 0.6, 2.0, 140),
		openRep("b", 1024, 2000, 0.5, 3.6, 12.0, 480),
		rep("a", 1024, 1, 1, 2000, 1), rep("b", 1024, 1, 1, 700, 3),
	}
	reps[2].Open.Late, reps[2].Open.Missed = 3, 1
	reps[2].RSS = map[string]ProcRSS{"caddy": {PeakKB: 300 << 10, PeakAnonKB: 200 << 10}}
	reps[6].ServerCPU = map[string]ProcCPU{"caddy": {MicrosPerRequest: 300}}
	reps[7].ServerCPU = map[string]ProcCPU{"caddy": {MicrosPerRequest: 1200}}
	reps[6].Latency.P50, reps[7].Latency.P50 = 0.4, 1.5
	sum := summarize(reps)

	find := func(s string, rate float64, conc int) *Group {
		for _, g := range sum.Groups {
			if g.Scenario == s && g.Rate == rate && g.Concurrency == conc {
				return g
			}
		}
		t.Fatalf("no group %s at %v/s c=%d", s, rate, conc)
		return nil
	}
	b := find("b", 1000, 64)
	if !b.HasRatios || b.AddedP50 != 1 || b.AddedP99 != 6 || b.AddedP999 != 12 || b.AddedCPU != 350 ||
		b.Late != 3 || b.Missed != 1 || b.PeakRSSMiB != 300 || b.PeakAnonMiB != 200 {
		t.Errorf("sync at 1000/s: %+v", b)
	}
	if b50 := find("b", 2000, 64); b50.AddedP50 != 3 {
		t.Errorf("sync at 2000/s compared with the wrong base: %+v", b50)
	}
	if lone := find("b", 0, 1); lone.AddedCPU != 900 || lone.AddedP50 != 1.1 {
		t.Errorf("sync at c=1: %+v", lone)
	}

	want := map[string]bool{
		"(b) sync added p50 <= 2 ms, open loop at 25% (1000/s), 1 KB":      true,
		"(b) sync added p99 <= 5 ms, open loop at 25% (1000/s), 1 KB":      false,
		"(c) async ack added p99 <= 5 ms, open loop at 25% (1000/s), 1 KB": true,
		"(b) sync added p50 <= 0.5 ms, c=1, 1 KB":                          false,
		"(b) sync added Caddy CPU per event <= 300 µs, c=1, 1 KB":          false,
	}
	seen := 0
	for _, tg := range sum.Targets {
		if met, ok := want[tg.Text]; ok {
			seen++
			if !tg.Found || tg.Met != met {
				t.Errorf("target %+v, want met=%v", tg, met)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d open-loop and c=1 targets: %+v", seen, len(want), sum.Targets)
	}

	var out strings.Builder
	writeMarkdown(&out, sum)
	for _, s := range []string{
		"| (b) gateway sync + reverse_proxy | 1 KB | 1000 (25%) | 1 | 1000 | 1.50 | 7.00 | 14.00 | +1.00 | +6.00 | +12.00 | 500 | 3 / 1 | 300 (200) | 0 |",
		"| (b) gateway sync + reverse_proxy | 1 KB | 1 | 1.50 | 3.00 | +1.10 | +2.00 | 1200 | +900 |",
		"| (b) sync added Caddy CPU per event <= 300 µs, c=1, 1 KB | +900 µs | **no** |",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, out.String())
		}
	}
	// The open loop's rows stay out of the closed loop's table.
	if strings.Count(out.String(), "| (b) gateway sync + reverse_proxy | 1 KB | 1000") != 1 {
		t.Errorf("open-loop row repeated:\n%s", out.String())
	}
}
