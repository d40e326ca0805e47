// Command stages reads the spans Caddy's tracing writes with
// OTEL_TRACES_EXPORTER=console (one JSON span a line, on Caddy's stdout,
// mixed with its log lines) and prints, per span name, the percentiles of
// its duration over the requests, and the time of each ingest span its
// children do not cover: where a gateway request's time goes, stage by
// stage.
//
//	OTEL_TRACES_EXPORTER=console OTEL_TRACES_SAMPLER=always_on caddy run ... >caddy.out
//	go run ./bench/stages <caddy.out
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"
)

// span is the part of an exported span (the stdouttrace exporter's
// SpanStub) this command reads.
type span struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ SpanID string }
	StartTime   time.Time
	EndTime     time.Time
}

func main() {
	spans, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stages:", err)
		os.Exit(1)
	}
	report(os.Stdout, spans)
}

// read takes every line that decodes as a span; Caddy's log lines do not.
func read(r io.Reader) ([]span, error) {
	var out []span
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var s span
		if json.Unmarshal(sc.Bytes(), &s) != nil || s.Name == "" || s.SpanContext.SpanID == "" {
			continue
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// report prints the duration percentiles per span name, and for the spans
// that have children, the time before the first child, between children
// and after the last: the stages nothing else timed.
func report(w io.Writer, spans []span) {
	byName := map[string][]time.Duration{}
	children := map[string][]span{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s.EndTime.Sub(s.StartTime))
		if s.Parent.SpanID != "" {
			children[s.Parent.SpanID] = append(children[s.Parent.SpanID], s)
		}
	}
	gaps := map[string][]time.Duration{}
	for _, s := range spans {
		cs := children[s.SpanContext.SpanID]
		if len(cs) == 0 {
			continue
		}
		slices.SortFunc(cs, func(a, b span) int { return a.StartTime.Compare(b.StartTime) })
		at, prev := s.StartTime, "start"
		for _, c := range cs {
			key := fmt.Sprintf("%s: %s → %s", s.Name, prev, c.Name)
			gaps[key] = append(gaps[key], c.StartTime.Sub(at))
			at, prev = c.EndTime, c.Name
		}
		key := fmt.Sprintf("%s: %s → end", s.Name, prev)
		gaps[key] = append(gaps[key], s.EndTime.Sub(at))
	}
	fmt.Fprintf(w, "%d spans\n\n", len(spans))
	table(w, "span", byName)
	fmt.Fprintln(w)
	table(w, "untimed gap inside a span", gaps)
}

func table(w io.Writer, what string, m map[string][]time.Duration) {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "| %s | count | mean µs | p50 µs | p90 µs | p99 µs |\n|---|---|---|---|---|---|\n", what)
	for _, n := range names {
		d := m[n]
		slices.Sort(d)
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		q := func(p float64) float64 {
			return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds())
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.0f | %.0f |\n", n, len(d),
			float64(sum.Microseconds())/float64(len(d)), q(0.5), q(0.9), q(0.99))
	}
}
