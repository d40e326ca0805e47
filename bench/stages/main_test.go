package main

import (
	"strings"
	"testing"
)

func TestStagesTimesSpansAndTheGapsBetweenChildren(t *testing.T) {
	in := strings.Join([]string{
		`{"level":"info","msg":"a log line, not a span"}`,
		`{"Name":"webhook.ingest","SpanContext":{"TraceID":"t1","SpanID":"i1"},"Parent":{"SpanID":"h1"},"StartTime":"2026-01-01T00:00:00.000000Z","EndTime":"2026-01-01T00:00:00.010000Z"}`,
		`{"Name":"webhook.verify","SpanContext":{"TraceID":"t1","SpanID":"v1"},"Parent":{"SpanID":"i1"},"StartTime":"2026-01-01T00:00:00.001000Z","EndTime":"2026-01-01T00:00:00.002000Z"}`,
		`{"Name":"webhook.store","SpanContext":{"TraceID":"t1","SpanID":"s1"},"Parent":{"SpanID":"i1"},"StartTime":"2026-01-01T00:00:00.005000Z","EndTime":"2026-01-01T00:00:00.009000Z"}`,
	}, "\n")
	spans, err := read(strings.NewReader(in))
	if err != nil || len(spans) != 3 {
		t.Fatalf("read %d spans, %v; want 3", len(spans), err)
	}
	var out strings.Builder
	report(&out, spans)
	for _, want := range []string{
		"| webhook.ingest | 1 | 10000 |",
		"| webhook.store | 1 | 4000 |",
		"| webhook.ingest: start → webhook.verify | 1 | 1000 |",
		"| webhook.ingest: webhook.verify → webhook.store | 1 | 3000 |",
		"| webhook.ingest: webhook.store → end | 1 | 1000 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
