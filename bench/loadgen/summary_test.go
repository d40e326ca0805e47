package main

import (
	"bytes"
	"strings"
	"testing"
)

func rep(scenario string, size, c, run int, rps, p99 float64) *Report {
	return &Report{Scenario: scenario, BodyBytes: size, Concurrency: c, Run: run, RPS: rps, Latency: Latency{P50: p99 / 4, P99: p99}}
}

func TestSummarizeMediansRatiosAndTargets(t *testing.T) {
	reps := []*Report{
		rep("a", 1024, 32, 1, 1000, 10), rep("a", 1024, 32, 2, 3000, 30), rep("a", 1024, 32, 3, 2000, 20),
		rep("b", 1024, 32, 1, 1800, 21), rep("b", 1024, 32, 2, 1700, 23), rep("b", 1024, 32, 3, 9000, 22),
		rep("a", 1024, 128, 1, 2000, 50),
		rep("c", 1024, 128, 1, 1900, 40),
	}
	reps[len(reps)-1].Drain = &DrainReport{Target: 100, AtLoadEnd: 40, Complete: true, Seconds: 1.5, DeliveryRate: 40}
	for i, r := range reps[:6] {
		us := 100.0 // (a)
		if r.Scenario == "b" {
			us = 150
			r.Batches = &Batches{WritesPerSync: float64(7 + i%3), Syncs: 10, WritesPerTxn: 3}
		}
		r.ServerCPU = map[string]ProcCPU{"caddy": {MicrosPerRequest: us}}
	}
	sum := summarize(reps)

	var b *Group
	for _, g := range sum.Groups {
		if g.Scenario == "b" {
			b = g
		}
	}
	// Medians per metric: a = 2000 req/s, 20 ms; b = 1800 req/s, 22 ms.
	if b == nil || b.RPS != 1800 || b.P99 != 22 || b.RatioRPS != 0.9 || b.AddedP99 != 2 {
		t.Fatalf("sync group: %+v", b)
	}
	want := map[string]bool{
		"(b) sync req/s >= 0.70 x (a) at c=32, 1 KB":                                  true,
		"(b) sync added p99 over (a) <= 5 ms at c=32, 1 KB":                           true,
		"(b) sync Caddy CPU per request <= 1.6 x (a)'s at c=32, 1 KB":                 true, // 1.5
		"(c) async acks/s >= 1.00 x (a) at c=128 with fsync, 1 KB":                    false,
		"(c) async delivery rate after the load >= 0.80 x (a)'s req/s at c=128, 1 KB": false, // 40/s of 2000
	}
	for _, tg := range sum.Targets {
		met, ok := want[tg.Text]
		if !ok || !tg.Found || tg.Met != met {
			t.Errorf("target %+v, want met=%v (known: %v)", tg, met, ok)
		}
	}

	var out bytes.Buffer
	writeMarkdown(&out, sum)
	for _, s := range []string{"| (b) gateway sync + reverse_proxy | 1 KB | 32 | 3 | 1800 | 1800 / 1700 / 9000 | 0.90 |", "| 150 | 8.0 (3.0) | 0 |", "| 40% | 1.50 s | 40/s | 1 of 1 |"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, out.String())
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
