package main

import (
	"fmt"
	"io"
	"sort"
)

// openTargets are the latency targets a provider would recognise: at 25% of
// the proxy's capacity in the open loop, and for a lone event (c=1), added
// over the proxy at the same rate or concurrency.
func openTargets(groups map[groupKey]*Group) []Target {
	var keys []groupKey
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].size != keys[j].size {
			return keys[i].size < keys[j].size
		}
		return keys[i].scenario < keys[j].scenario
	})
	var ts []Target
	add := func(text string, value float64, met, found bool) {
		ts = append(ts, Target{Text: text, Value: value, Met: met, Found: found})
	}
	for _, k := range keys {
		g := groups[k]
		switch {
		case k.rate > 0 && g.Share > 0.2 && g.Share < 0.3:
			at := fmt.Sprintf("open loop at 25%% (%d/s), %s", k.rate, sizeName(k.size))
			switch k.scenario {
			case "b":
				add("(b) sync added p50 <= 2 ms, "+at, g.AddedP50, g.AddedP50 <= 2, g.HasRatios)
				add("(b) sync added p99 <= 5 ms, "+at, g.AddedP99, g.AddedP99 <= 5, g.HasRatios)
			case "c":
				add("(c) async ack added p99 <= 5 ms, "+at, g.AddedP99, g.AddedP99 <= 5, g.HasRatios)
			case "p":
				add("(p) async ack on PostgreSQL added p99 <= 10 ms, "+at, g.AddedP99, g.AddedP99 <= 10, g.HasRatios)
			}
		case k.rate == 0 && k.conc == 1 && k.scenario == "b":
			at := fmt.Sprintf("c=1, %s", sizeName(k.size))
			add("(b) sync added p50 <= 0.5 ms, "+at, g.AddedP50, g.AddedP50 <= 0.5, g.HasRatios)
			add("(b) sync added Caddy CPU per event <= 300 µs, "+at, g.AddedCPU, g.AddedCPU <= 300, g.HasRatios && g.AddedCPU != 0)
		}
	}
	return ts
}

// writeOpenMarkdown writes the open loop's table (latencies from the
// scheduled time, added over the proxy at the same rate) and the
// concurrency-1 table (added latency and CPU per event), when the reports
// hold such measurements.
func writeOpenMarkdown(w io.Writer, sum *Summary) {
	var open, lone []*Group
	for _, g := range sum.Groups {
		switch {
		case g.Rate > 0:
			open = append(open, g)
		case g.Concurrency == 1:
			lone = append(lone, g)
		}
	}
	if len(open) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Open loop: a fixed rate, latency from each request's scheduled time; added = over (a) at the same rate.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| scenario | body | rate/s (share of capacity) | runs | answered/s | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 | added p99.9 | Caddy CPU µs/req | late / missed | Caddy peak RSS MiB (anon) | failures |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, g := range open {
			added := "– | – | –"
			if g.HasRatios {
				added = fmt.Sprintf("%+.2f | %+.2f | %+.2f", g.AddedP50, g.AddedP99, g.AddedP999)
			}
			share := ""
			if g.Share > 0 {
				share = fmt.Sprintf(" (%.0f%%)", 100*g.Share)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f%s | %d | %.0f | %.2f | %.2f | %.2f | %s | %.0f | %d / %d | %.0f (%.0f) | %d |\n",
				g.Name, sizeName(g.BodyBytes), g.Rate, share, g.Runs, g.RPS, g.P50, g.P99, g.P999, added,
				g.CaddyUS, g.Late, g.Missed, g.PeakRSSMiB, g.PeakAnonMiB, g.Failures+g.Duplicates)
		}
	}
	if len(lone) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Concurrency 1: one request at a time; added = over (a) at c=1.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| scenario | body | runs | p50 ms | p99 ms | added p50 | added p99 | Caddy CPU µs/req | added CPU µs/event |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, g := range lone {
			added, cpu := "– | –", "–"
			if g.HasRatios {
				added = fmt.Sprintf("%+.2f | %+.2f", g.AddedP50, g.AddedP99)
				if g.AddedCPU != 0 {
					cpu = fmt.Sprintf("%+.0f", g.AddedCPU)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.2f | %.2f | %s | %.0f | %s |\n",
				g.Name, sizeName(g.BodyBytes), g.Runs, g.P50, g.P99, added, g.CaddyUS, cpu)
		}
	}
}
