package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// scenarioNames are the benchmark's scenarios as bench/run.sh names them.
var scenarioNames = map[string]string{
	"a": "(a) reverse_proxy",
	"b": "(b) gateway sync + reverse_proxy",
	"c": "(c) gateway async, 202 after fsync",
	"p": "(p) gateway async on PostgreSQL, 202 after commit",
	"t": "(t) (b) under tracing, all sampled",
	"u": "(u) (c) under tracing, all sampled",
	"f": "(f) (c) fanning out to two destinations",
	"o": "(o) (c) ordered by subject, 1,000 lanes",
	"m": "(m) (c) with the backend refusing: a growing backlog",
}

// Group is one scenario at one body size and concurrency over its runs.
// Every figure is the median over the runs (each metric on its own), as a
// shared machine's noise makes a mean of three misleading.
type Group struct {
	Scenario    string    `json:"scenario"`
	Name        string    `json:"name"`
	BodyBytes   int       `json:"body_bytes"`
	Concurrency int       `json:"concurrency"`
	Runs        int       `json:"runs"`
	RPSRuns     []float64 `json:"rps_runs"`
	RPS         float64   `json:"rps"`
	P50         float64   `json:"p50_ms"`
	P99         float64   `json:"p99_ms"`
	P999        float64   `json:"p999_ms"`
	Failures    int       `json:"failures"` // non-2xx answers and transport errors, all runs
	Duplicates  int       `json:"duplicates"`
	CaddyUS     float64   `json:"caddy_us_per_request,omitempty"`
	CaddyCores  float64   `json:"caddy_cores,omitempty"`
	ClientUS    float64   `json:"client_us_per_request"`
	LoadAvg     float64   `json:"loadavg"`
	// The store's batch sizes (see Batches), medians over the runs.
	WritesPerSync float64 `json:"writes_per_sync,omitempty"`
	WritesPerTxn  float64 `json:"writes_per_txn,omitempty"`

	// Ratios to scenario a at the same size and concurrency.
	RatioRPS  float64 `json:"ratio_rps,omitempty"`
	AddedP50  float64 `json:"added_p50_ms,omitempty"`
	AddedP99  float64 `json:"added_p99_ms,omitempty"`
	HasRatios bool    `json:"has_ratios"`
	// AddedP999 and AddedCPU (Caddy's µs per request) over scenario a.
	AddedP999 float64 `json:"added_p999_ms,omitempty"`
	AddedCPU  float64 `json:"added_caddy_us_per_request,omitempty"`

	// Open loop only (-rate): the scheduled rate, its share of the
	// proxy's capacity, and the requests sent late or never (all runs).
	Rate   float64 `json:"rate,omitempty"`
	Share  float64 `json:"share,omitempty"`
	Late   int     `json:"late,omitempty"`
	Missed int     `json:"missed,omitempty"`
	// Caddy's peak RSS (and its anonymous part at the peak) over the
	// load, MiB, the highest of the runs.
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
	PeakAnonMiB float64 `json:"peak_anon_mib,omitempty"`

	// Async only.
	DrainSeconds   float64 `json:"drain_s,omitempty"`
	DrainComplete  bool    `json:"drain_complete,omitempty"`
	DrainedRuns    int     `json:"drained_runs,omitempty"`
	DrainRate      float64 `json:"delivery_rate_after_load,omitempty"`
	DeliveredShare float64 `json:"delivered_share_at_load_end,omitempty"`
}

// Target is one acceptance target, checked against the medians.
type Target struct {
	Text  string  `json:"target"`
	Value float64 `json:"value"`
	Met   bool    `json:"met"`
	Found bool    `json:"found"`
}

// Summary is what -summarize writes as JSON.
type Summary struct {
	Groups  []*Group `json:"groups"`
	Targets []Target `json:"targets"`
}

func summarizeDir(dir, jsonPath string, w io.Writer) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	var reps []*Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil || r.Scenario == "" {
			continue // not a measurement (the summary itself, say)
		}
		reps = append(reps, &r)
	}
	if len(reps) == 0 {
		return fmt.Errorf("no measurement reports in %s", dir)
	}
	sum := summarize(reps)
	writeMarkdown(w, sum)
	if jsonPath != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		return os.WriteFile(jsonPath, append(b, '\n'), 0o644)
	}
	return nil
}

type groupKey struct {
	scenario   string
	size, conc int
	rate       int // open loop's rate; 0 for the closed loop
}

// openRate is the group key's rate of a report.
func openRate(r *Report) int {
	if r.Open == nil {
		return 0
	}
	return int(r.Open.Rate + 0.5)
}

func summarize(reps []*Report) *Summary {
	by := map[groupKey][]*Report{}
	for _, r := range reps {
		k := groupKey{r.Scenario, r.BodyBytes, r.Concurrency, openRate(r)}
		by[k] = append(by[k], r)
	}
	groups := map[groupKey]*Group{}
	for k, rs := range by {
		g := &Group{Scenario: k.scenario, Name: scenarioNames[k.scenario], BodyBytes: k.size, Concurrency: k.conc, Runs: len(rs), Rate: float64(k.rate)}
		if g.Name == "" {
			g.Name = k.scenario
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Run < rs[j].Run })
		var rps, p50, p99, p999, cus, ccores, clus, load, drainS, share, drainRate, perSync, perTxn []float64
		g.DrainComplete = true
		for _, r := range rs {
			rps = append(rps, r.RPS)
			p50 = append(p50, r.Latency.P50)
			p99 = append(p99, r.Latency.P99)
			p999 = append(p999, r.Latency.P999)
			clus = append(clus, r.ClientMicrosPerRequest)
			load = append(load, (r.LoadAvg[0]+r.LoadAvg[1])/2)
			g.Failures += r.Non2xx
			for _, n := range r.Errors {
				g.Failures += n
			}
			g.Duplicates += r.Duplicates
			if o := r.Open; o != nil {
				g.Share = o.Share
				g.Late += o.Late
				g.Missed += o.Missed
			}
			if m, ok := r.RSS["caddy"]; ok {
				g.PeakRSSMiB = max(g.PeakRSSMiB, float64(m.PeakKB)/1024)
				g.PeakAnonMiB = max(g.PeakAnonMiB, float64(m.PeakAnonKB)/1024)
			}
			if c, ok := r.ServerCPU["caddy"]; ok {
				cus = append(cus, c.MicrosPerRequest)
				ccores = append(ccores, c.Cores)
			}
			if bt := r.Batches; bt != nil && bt.Syncs > 0 {
				perSync = append(perSync, bt.WritesPerSync)
				if bt.WritesPerTxn > 0 {
					perTxn = append(perTxn, bt.WritesPerTxn)
				}
			}
			if d := r.Drain; d != nil {
				drainS = append(drainS, d.Seconds)
				drainRate = append(drainRate, d.DeliveryRate)
				if d.Complete {
					g.DrainedRuns++
				}
				if d.Target > 0 {
					share = append(share, float64(d.AtLoadEnd)/float64(d.Target))
				}
				g.DrainComplete = g.DrainComplete && d.Complete
			}
		}
		g.RPSRuns = rps
		g.RPS, g.P50, g.P99, g.P999 = median(rps), median(p50), median(p99), median(p999)
		g.CaddyUS, g.CaddyCores, g.ClientUS, g.LoadAvg = median(cus), median(ccores), median(clus), median(load)
		g.WritesPerSync, g.WritesPerTxn = median(perSync), median(perTxn)
		if len(drainS) > 0 {
			g.DrainSeconds, g.DeliveredShare, g.DrainRate = median(drainS), median(share), median(drainRate)
		} else {
			g.DrainComplete = false
		}
		groups[k] = g
	}
	sum := &Summary{}
	for k, g := range groups {
		if k.scenario != "a" {
			if base, ok := groups[groupKey{"a", k.size, k.conc, k.rate}]; ok && base.RPS > 0 {
				g.HasRatios = true
				g.RatioRPS = g.RPS / base.RPS
				g.AddedP50 = g.P50 - base.P50
				g.AddedP99 = g.P99 - base.P99
				g.AddedP999 = g.P999 - base.P999
				if g.CaddyUS > 0 && base.CaddyUS > 0 {
					g.AddedCPU = g.CaddyUS - base.CaddyUS
				}
			}
		}
		sum.Groups = append(sum.Groups, g)
	}
	slices.SortFunc(sum.Groups, func(x, y *Group) int {
		if x.Rate != y.Rate {
			return int(x.Rate - y.Rate)
		}
		if x.Concurrency != y.Concurrency {
			return x.Concurrency - y.Concurrency
		}
		if x.BodyBytes != y.BodyBytes {
			return x.BodyBytes - y.BodyBytes
		}
		return strings.Compare(x.Scenario, y.Scenario)
	})
	sum.Targets = append(targets(groups), openTargets(groups)...)
	return sum
}

// targets are the acceptance targets of the store redesign, for 1 KB
// bodies and for larger ones (12 KB in the benchmark).
func targets(groups map[groupKey]*Group) []Target {
	sizes := map[int]bool{}
	for k := range groups {
		sizes[k.size] = true
	}
	var sorted []int
	for s := range sizes {
		sorted = append(sorted, s)
	}
	sort.Ints(sorted)
	// bound picks a target's bound for size: small for 1 KB and less.
	bound := func(size int, small, large float64) float64 {
		if size <= 1024 {
			return small
		}
		return large
	}
	var ts []Target
	each := func(text func(size int) string, check func(size int) (value float64, met, found bool)) {
		for _, s := range sorted {
			t := Target{Text: text(s)}
			t.Value, t.Met, t.Found = check(s)
			ts = append(ts, t)
		}
	}
	ratio := func(scenario string, conc int) func(int) (*Group, *Group, bool) {
		return func(size int) (*Group, *Group, bool) {
			g, ok := groups[groupKey{scenario, size, conc, 0}]
			base, okBase := groups[groupKey{"a", size, conc, 0}]
			return g, base, ok && okBase && g.HasRatios
		}
	}
	sync32, async128 := ratio("b", 32), ratio("c", 128)
	each(func(s int) string {
		return fmt.Sprintf("(b) sync req/s >= %.2f x (a) at c=32, %s", bound(s, 0.70, 0.60), sizeName(s))
	}, func(s int) (float64, bool, bool) {
		g, _, ok := sync32(s)
		if !ok {
			return 0, false, false
		}
		return g.RatioRPS, g.RatioRPS >= bound(s, 0.70, 0.60), true
	})
	each(func(s int) string {
		return fmt.Sprintf("(b) sync added p99 over (a) <= 5 ms at c=32, %s", sizeName(s))
	}, func(s int) (float64, bool, bool) {
		g, _, ok := sync32(s)
		if !ok {
			return 0, false, false
		}
		return g.AddedP99, g.AddedP99 <= 5, true
	})
	each(func(s int) string {
		return fmt.Sprintf("(b) sync Caddy CPU per request <= %.1f x (a)'s at c=32, %s", bound(s, 1.6, 2.0), sizeName(s))
	}, func(s int) (float64, bool, bool) {
		g, base, ok := sync32(s)
		if !ok || base.CaddyUS <= 0 || g.CaddyUS <= 0 {
			return 0, false, false
		}
		x := g.CaddyUS / base.CaddyUS
		return x, x <= bound(s, 1.6, 2.0), true
	})
	each(func(s int) string {
		return fmt.Sprintf("(c) async acks/s >= %.2f x (a) at c=128 with fsync, %s", bound(s, 1.0, 0.80), sizeName(s))
	}, func(s int) (float64, bool, bool) {
		g, _, ok := async128(s)
		if !ok {
			return 0, false, false
		}
		return g.RatioRPS, g.RatioRPS >= bound(s, 1.0, 0.80), true
	})
	each(func(s int) string {
		return fmt.Sprintf("(c) async delivery rate after the load >= 0.80 x (a)'s req/s at c=128, %s", sizeName(s))
	}, func(s int) (float64, bool, bool) {
		g, base, ok := async128(s)
		if !ok || g.DrainRate <= 0 || base.RPS <= 0 {
			return 0, false, false
		}
		x := g.DrainRate / base.RPS
		return x, x >= 0.80, true
	})
	if g, ok := groups[groupKey{"p", 1024, 128, 0}]; ok {
		t := Target{Text: "(p) async acks/s on PostgreSQL >= 0.5 x (a) at c=128, synchronous_commit on, 1 KB", Found: g.HasRatios}
		if t.Found {
			t.Value, t.Met = g.RatioRPS, g.RatioRPS >= 0.5
		}
		ts = append(ts, t)
	}
	return ts
}

func writeMarkdown(w io.Writer, sum *Summary) {
	fmt.Fprintln(w, "| scenario | body | c | runs | req/s (median) | req/s per run | ratio to (a) | p50 ms | p99 ms | p99.9 ms | added p99 ms | Caddy CPU µs/req | group commit: writes/sync (writes/txn) | failures |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, g := range sum.Groups {
		if g.Rate > 0 {
			continue // in the open loop's table
		}
		ratio, added := "1", "–"
		if g.Scenario != "a" {
			ratio, added = "–", "–"
			if g.HasRatios {
				ratio, added = fmt.Sprintf("%.2f", g.RatioRPS), fmt.Sprintf("%+.2f", g.AddedP99)
			}
		}
		var per []string
		for _, r := range g.RPSRuns {
			per = append(per, fmt.Sprintf("%.0f", r))
		}
		batch := "–"
		if g.WritesPerSync > 0 {
			batch = fmt.Sprintf("%.1f", g.WritesPerSync)
			if g.WritesPerTxn > 0 {
				batch += fmt.Sprintf(" (%.1f)", g.WritesPerTxn)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %s | %s | %.2f | %.2f | %.2f | %s | %.0f | %s | %d |\n",
			g.Name, sizeName(g.BodyBytes), g.Concurrency, g.Runs, g.RPS, strings.Join(per, " / "), ratio,
			g.P50, g.P99, g.P999, added, g.CaddyUS, batch, g.Failures+g.Duplicates)
	}
	writeOpenMarkdown(w, sum)
	var async []*Group
	for _, g := range sum.Groups {
		if g.Rate == 0 && (g.DrainSeconds > 0 || g.Scenario == "c" || g.Scenario == "p") {
			async = append(async, g)
		}
	}
	if len(async) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| async | body | c | delivered by the load's end | drain time after the load | delivery rate after the load | runs fully drained |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, g := range async {
			drain := fmt.Sprintf("%.2f s", g.DrainSeconds)
			if g.DrainedRuns < g.Runs {
				drain = fmt.Sprintf("%.2f s (timed out)", g.DrainSeconds)
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.0f%% | %s | %.0f/s | %d of %d |\n",
				g.Name, sizeName(g.BodyBytes), g.Concurrency, 100*g.DeliveredShare, drain, g.DrainRate, g.DrainedRuns, g.Runs)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | median | met |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range sum.Targets {
		switch {
		case !t.Found:
			fmt.Fprintf(w, "| %s | not measured | – |\n", t.Text)
		case strings.Contains(t.Text, "µs"):
			fmt.Fprintf(w, "| %s | %+.0f µs | %s |\n", t.Text, t.Value, yesNo(t.Met))
		case strings.Contains(t.Text, " ms"):
			fmt.Fprintf(w, "| %s | %+.2f ms | %s |\n", t.Text, t.Value, yesNo(t.Met))
		case strings.Contains(t.Text, "CPU"):
			fmt.Fprintf(w, "| %s | %.2f x | %s |\n", t.Text, t.Value, yesNo(t.Met))
		default:
			fmt.Fprintf(w, "| %s | %.2f | %s |\n", t.Text, t.Value, yesNo(t.Met))
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// median of xs (the mean of the middle two for an even count); 0 if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
