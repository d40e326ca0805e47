package main

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The open loop (-rate): requests leave on a fixed schedule, request i at
// start + i/rate, whether or not earlier ones have been answered, as a
// provider's retries and new events do. Latency is measured from the
// scheduled time, not from the moment the request was actually sent: a
// server that stalls for 100 ms then delays every request scheduled in that
// stall, and a closed loop (or an open loop timing from the send) would
// record one slow request where the provider saw a hundred
// ("coordinated omission").
//
// At most -c requests are in flight. A scheduled request that finds them all
// busy waits in a queue (its wait counts in its latency) and is counted as
// late once it leaves more than -late after its time; one that cannot even
// be queued, or is still queued -timeout after its time, is counted as
// missed and never sent. Missed requests have no latency, so a run with any
// is overloaded and its percentiles understate the tail: the report says so.

// scheduledAt is the send time of request i (from 0) at rate requests per
// second, starting at start.
func scheduledAt(start time.Time, rate float64, i int64) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}

// OpenLoop is the open loop's own part of a report.
type OpenLoop struct {
	// Rate is the scheduled rate in requests per second.
	Rate float64 `json:"rate"`
	// Share is Rate as a share of the proxy's closed-loop capacity, as
	// bench/run.sh computed it (0 when not given).
	Share float64 `json:"share,omitempty"`
	// Scheduled counts the requests scheduled in the measured period.
	Scheduled int `json:"scheduled"`
	// Late counts measured requests sent more than LateAfterMS after
	// their scheduled time (all in-flight slots busy, or the generator
	// itself behind).
	Late        int     `json:"late"`
	LateAfterMS float64 `json:"late_after_ms"`
	// Missed counts measured requests never sent: the queue was full, or
	// they waited longer than the request timeout.
	Missed int `json:"missed"`
	// SendLag is how long after its scheduled time each measured request
	// was sent: the generator's timer granularity and queueing. It is part
	// of every latency, the same for every scenario at one rate.
	SendLag Latency `json:"send_lag_ms"`
	// Service is the latency from the actual send, which a closed loop
	// would report: beside Latency it shows how much queueing the
	// schedule exposed.
	Service Latency `json:"service_ms"`
}

// openJob is one scheduled request.
type openJob struct {
	i     int64
	sched time.Time
}

// openWorker is the per-goroutine state of the open loop, merged after
// the run like worker's.
type openWorker struct {
	worker
	lags    []time.Duration
	service []time.Duration
	late    int
	missed  int
}

// runOpen sends requests at cfg.Rate from start until measureTo, measuring
// those scheduled in [measureFrom, measureTo), and returns the per-worker
// results and the count of requests that could not be queued.
func runOpen(ctx context.Context, cfg config, client *http.Client, gen *Payloads, p *pool, start, measureFrom, measureTo time.Time) ([]*openWorker, int) {
	// The queue holds up to a second of requests (at least the in-flight
	// cap): beyond that the server is far past saturation and queueing
	// more only measures the queue.
	jobs := make(chan openJob, max(int(cfg.Rate), cfg.Concurrency))
	expected := int(cfg.Rate*cfg.Duration.Seconds()) + 1
	workers := make([]*openWorker, cfg.Concurrency)
	var wg sync.WaitGroup
	for n := range workers {
		w := &openWorker{worker: worker{status: map[int]int{}, errs: map[string]int{}}}
		// Room for the expected samples up front, as in the closed loop.
		per := min(expected/cfg.Concurrency+64, 1<<20)
		w.latencies = make([]time.Duration, 0, per)
		w.lags = make([]time.Duration, 0, per)
		w.service = make([]time.Duration, 0, per)
		workers[n] = w
		wg.Go(func() { w.loop(ctx, cfg, client, gen, p, jobs, measureFrom, measureTo) })
	}

	var unqueued atomic.Int64
	for i := int64(0); ; i++ {
		t := scheduledAt(start, cfg.Rate, i)
		if !t.Before(measureTo) {
			break
		}
		if d := time.Until(t); d > 0 {
			time.Sleep(d)
		}
		select {
		case jobs <- openJob{i: i, sched: t}:
		default:
			if !t.Before(measureFrom) {
				unqueued.Add(1)
			}
		}
	}
	close(jobs)
	wg.Wait()
	return workers, int(unqueued.Load())
}

// loop takes scheduled requests until the queue closes. A request still
// queued cfg.Timeout after its time is dropped as missed, which bounds how
// long an overloaded run goes on after the schedule ends.
func (w *openWorker) loop(ctx context.Context, cfg config, client *http.Client, gen *Payloads, p *pool, jobs <-chan openJob, measureFrom, measureTo time.Time) {
	buf := make([]byte, 4096)
	for j := range jobs {
		measured := !j.sched.Before(measureFrom) && j.sched.Before(measureTo)
		t0 := time.Now()
		if t0.Sub(j.sched) > cfg.Timeout {
			if measured {
				w.missed++
			}
			continue
		}
		ev := p.take()
		code, dup, err := send(ctx, client, cfg.URL, gen.PrefixOf(ev), ev, buf)
		t1 := time.Now()
		if code >= 200 && code < 300 {
			w.acked++
		}
		if !measured {
			continue
		}
		if err != nil {
			w.errs[errClass(err)]++
			continue
		}
		w.status[code]++
		if dup {
			w.dups++
		}
		lag := t0.Sub(j.sched)
		if lag > cfg.LateAfter {
			w.late++
		}
		w.latencies = append(w.latencies, t1.Sub(j.sched))
		w.lags = append(w.lags, lag)
		w.service = append(w.service, t1.Sub(t0))
	}
}

// openSummary merges the open loop's workers into the report's OpenLoop
// part; the latencies themselves go through newReport like the closed
// loop's.
func openSummary(cfg config, workers []*openWorker, unqueued int) *OpenLoop {
	o := &OpenLoop{Rate: cfg.Rate, Share: cfg.Share, LateAfterMS: float64(cfg.LateAfter) / 1e6, Missed: unqueued}
	var lags, service []time.Duration
	for _, w := range workers {
		o.Late += w.late
		o.Missed += w.missed
		lags = append(lags, w.lags...)
		service = append(service, w.service...)
	}
	o.Scheduled = scheduledIn(cfg.Rate, cfg.Warmup, cfg.Duration)
	o.SendLag = latencies(lags)
	o.Service = latencies(service)
	return o
}

// scheduledIn counts the requests of a schedule starting at 0 whose times
// fall in [warmup, warmup+duration): those the report measures.
func scheduledIn(rate float64, warmup, duration time.Duration) int {
	// first index at or after t: ceil(t × rate), computed as scheduledAt
	// computes times, so that the two agree at the boundaries.
	first := func(t time.Duration) int64 {
		i := int64(t.Seconds() * rate)
		for scheduledAt(time.Time{}, rate, i).Sub(time.Time{}) < t {
			i++
		}
		for i > 0 && scheduledAt(time.Time{}, rate, i-1).Sub(time.Time{}) >= t {
			i--
		}
		return i
	}
	return int(first(warmup+duration) - first(warmup))
}
