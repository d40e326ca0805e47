package report

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func key(src, id string) sim.Key { return sim.Key{Source: src, ID: id} }

func send(provider string, event int64, kind sim.Kind, attempt int, at time.Duration, status int, keys ...sim.Key) sim.Send {
	s := sim.Send{
		Provider: provider, Event: event, Kind: kind, Attempt: attempt,
		Start: t0.Add(at), Latency: ms(5), Status: status, Keys: keys, Items: len(keys),
	}
	switch status {
	case http.StatusOK:
		s.Response = `{"status":"duplicate","id":"x"}`
	case http.StatusAccepted:
		s.Response = `{"status":"accepted","id":"x"}`
	case 0:
		s.Err = "timeout: deadline exceeded"
	}
	return s
}

func deliv(k sim.Key, provider string, at time.Duration, replay bool) sink.Delivery {
	return sink.Delivery{Source: k.Source, ID: k.ID, Provider: provider, Received: t0.Add(at), Replay: replay}
}

func constructed() Input {
	u1, u2 := key("/usaepay", "u1"), key("/usaepay", "u2")
	l1, l2, l3 := key("/openloyalty", "l1"), key("/openloyalty", "l2"), key("/openloyalty", "l3")
	s1, s2 := key("/sublytics", "s1"), key("/sublytics", "s2")
	return Input{
		Sends: []sim.Send{
			send(sim.USAePay, 1, sim.Original, 1, 0, 503, u1),
			send(sim.USAePay, 1, sim.Original, 2, ms(100), 202, u1),
			send(sim.USAePay, 2, sim.Original, 1, 0, 202, u2),
			send(sim.USAePay, 2, sim.Duplicate, 1, ms(1), 200, u2),
			send(sim.USAePay, 2, sim.Duplicate, 1, ms(2), 409, u2),
			send(sim.OpenLoyalty, 3, sim.Original, 1, 0, 202, l1, l2),
			send(sim.OpenLoyalty, 4, sim.Original, 1, 0, 0, l3),
			send(sim.Sublytics, 5, sim.Original, 1, 0, 401, s1),
			send(sim.Sublytics, 6, sim.Original, 1, 0, 202, s2),
			send(sim.Sublytics, 6, sim.Redelivery, 1, ms(200), 200, s2),
		},
		Deliveries: []sink.Delivery{
			deliv(u1, "usaepay", ms(150), false),
			deliv(u2, "usaepay", ms(20), false),
			deliv(u2, "usaepay", ms(40), false),
			deliv(u2, "usaepay", ms(900), true),
			deliv(l1, "openloyalty", ms(30), false),
			deliv(l3, "openloyalty", ms(50), false),
			deliv(s2, "sublytics", ms(10), false),
			deliv(key("/usaepay", "x1"), "usaepay", ms(60), false),
		},
		SinkStats: sink.Stats{Invalid: 2, Failed: 3, Refused: 1},
		HasSink:   true,
	}
}

func TestBuildArithmetic(t *testing.T) {
	r := Build(constructed())
	want := Counts{
		Unique: 6, Duplicates: 2, Redeliveries: 1, Retries: 1, Requests: 10,
		Acknowledged: 6, Accepted: 4, DuplicateAnswers: 2, Rejected: 1, InProgress: 1, ServerErrors: 1, NoAnswer: 1,
		Expected: 8 - 1, AckedEvents: 5,
		Delivered: 6, Doubled: 1, ExtraDeliveries: 1, Replays: 1, Lost: 1, DeliveredUnacked: 1, Unexpected: 1,
		LatencyN: 5, LatencyP50: ms(30), LatencyP99: ms(150), LatencyMax: ms(150),
	}
	if !reflect.DeepEqual(r.Counts, want) {
		t.Fatalf("totals\n got %+v\nwant %+v", r.Counts, want)
	}
	u := r.Providers[sim.USAePay]
	if u.Unique != 2 || u.Requests != 5 || u.InProgress != 1 || u.Rejected != 0 || u.Expected != 2 || u.Delivered != 3 || u.Unexpected != 1 ||
		u.Doubled != 1 || u.Lost != 0 || u.LatencyN != 2 || u.LatencyP50 != ms(20) || u.LatencyMax != ms(150) {
		t.Fatalf("usaepay %+v", u)
	}
	l := r.Providers[sim.OpenLoyalty]
	if l.Lost != 1 || l.DeliveredUnacked != 1 || l.Expected != 3 || l.AckedEvents != 2 || l.NoAnswer != 1 {
		t.Fatalf("openloyalty %+v", l)
	}
	s := r.Providers[sim.Sublytics]
	if s.Rejected != 1 || s.Redeliveries != 1 || s.DuplicateAnswers != 1 || s.Lost != 0 || s.Delivered != 1 {
		t.Fatalf("sublytics %+v", s)
	}
	if !reflect.DeepEqual(r.LostKeys, []sim.Key{key("/openloyalty", "l2")}) ||
		!reflect.DeepEqual(r.DoubledKeys, []sim.Key{key("/usaepay", "u2")}) ||
		!reflect.DeepEqual(r.UnexpectedKeys, []sim.Key{key("/usaepay", "x1")}) {
		t.Fatalf("lists %v %v %v", r.LostKeys, r.DoubledKeys, r.UnexpectedKeys)
	}
	if r.InvalidAtSink != 2 || r.SinkFaults != 4 || r.OK() {
		t.Fatalf("invalid %d faults %d ok %v", r.InvalidAtSink, r.SinkFaults, r.OK())
	}
	if want := []ErrorAnswer{
		{Provider: "usaepay", Status: 503, Count: 1},
		{Provider: "usaepay", Status: 409, Count: 1},
		{Provider: "openloyalty", Status: 0, Count: 1, Sample: "timeout: deadline exceeded"},
		{Provider: "sublytics", Status: 401, Count: 1},
	}; !reflect.DeepEqual(r.ErrorAnswers, want) {
		t.Fatalf("error answers %q", r.ErrorAnswers)
	}
	if r.Elapsed != ms(900) {
		t.Fatalf("elapsed %v", r.Elapsed)
	}
	p := r.Problems()
	for _, s := range []string{"1 lost (/openloyalty/l2)", "1 doubled (/usaepay/u2)", "1 unexpected", "2 invalid"} {
		if !strings.Contains(p, s) {
			t.Errorf("problems %q lack %q", p, s)
		}
	}
}

func TestReplaysAreNotDoubles(t *testing.T) {
	k := key("/usaepay", "a")
	r := Build(Input{
		HasSink: true,
		Sends:   []sim.Send{send(sim.USAePay, 0, sim.Original, 1, 0, 202, k)},
		Deliveries: []sink.Delivery{
			deliv(k, "usaepay", ms(1), false), deliv(k, "usaepay", ms(2), true), deliv(k, "usaepay", ms(3), true),
		},
	})
	if r.Doubled != 0 || r.Replays != 2 || r.Delivered != 1 || !r.OK() || r.LatencyP50 != ms(1) {
		t.Fatalf("%+v", r.Counts)
	}
	if !strings.Contains(r.Table(), "OK: every acknowledged event delivered exactly once") {
		t.Fatal(r.Table())
	}
}

func TestKeyErrorsAndNoSink(t *testing.T) {
	s := send(sim.OpenLoyalty, 0, sim.Original, 1, 0, 202)
	s.KeyErr = "boom"
	r := Build(Input{Sends: []sim.Send{s, send(sim.USAePay, 1, sim.Original, 1, 0, 202, key("/usaepay", "b"))}})
	if r.KeyErrors != 1 || r.KeyErrorSample != "boom" || r.HasSink || r.Lost != 0 || r.AckedEvents != 1 {
		t.Fatalf("%+v", r)
	}
	table := r.Table()
	if strings.Contains(table, "LOST") || !strings.Contains(table, "no sink data") {
		t.Fatal(table)
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, ms(i))
	}
	for p, want := range map[float64]time.Duration{50: ms(50), 99: ms(99), 100: ms(100), 1: ms(1), 0.5: ms(1)} {
		if got := Percentile(v, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(v[:1], 99) != ms(1) || Percentile(nil, 50) != 0 {
		t.Fatal("edge cases")
	}
	if Percentile(v[:3], 50) != ms(2) {
		t.Fatal("p50 of 3")
	}
}

func TestTableAligned(t *testing.T) {
	table := Build(constructed()).Table()
	// The table ends at the blank line before its legend.
	lines := strings.Split(strings.SplitN(table, "\n\n", 2)[0], "\n")
	width := len(lines[0])
	rows := 0
	for _, l := range lines {
		rows++
		if len(l) != width {
			t.Fatalf("ragged table:\n%s", table)
		}
	}
	for _, s := range []string{"openloyalty", "sublytics", "usaepay", "total", "LOST", "p99", "PROBLEMS"} {
		if !strings.Contains(table, s) {
			t.Fatalf("table lacks %q:\n%s", s, table)
		}
	}
	if rows < 20 {
		t.Fatalf("%d rows", rows)
	}
}

func TestWait(t *testing.T) {
	calls := 0
	r, err := Wait(context.Background(), func() (*Report, error) {
		calls++
		lost := 0
		if calls < 3 {
			lost = 1
		}
		return &Report{Counts: Counts{Lost: lost}}, nil
	}, WaitOptions{Poll: time.Millisecond, Settle: 5 * time.Millisecond})
	if err != nil || r.Lost != 0 || calls != 4 {
		t.Fatalf("err %v lost %d calls %d", err, r.Lost, calls)
	}

	start := time.Now()
	r, err = Wait(context.Background(), func() (*Report, error) {
		return &Report{Counts: Counts{Lost: 2}}, nil
	}, WaitOptions{Timeout: 80 * time.Millisecond, Poll: 10 * time.Millisecond})
	if !errors.Is(err, ErrIncomplete) || r == nil || r.Lost != 2 {
		t.Fatalf("err %v report %+v", err, r)
	}
	if el := time.Since(start); el < 70*time.Millisecond || el > 2*time.Second {
		t.Fatalf("waited %v", el)
	}

	boom := errors.New("boom")
	if _, err := Wait(context.Background(), func() (*Report, error) { return nil, boom }, WaitOptions{}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
}

// The table is followed by its legend, and a 409 "in progress" answer,
// which the provider retries, is not reported like a failure.
func TestTableLegendAndInProgress(t *testing.T) {
	r := Build(constructed())
	r.ErrorAnswers = []ErrorAnswer{
		{Provider: "usaepay", Status: 409, Count: 18, Sample: `{"status":"in_progress"}`},
		{Provider: "sublytics", Status: 401, Count: 3, Sample: `{"error":"unauthorized"}`},
	}
	table := r.Table()
	for _, want := range []string{
		`"events expected" counts the canonical events`,
		"retried as expected after 409 in progress: usaepay x18: {\"status\":\"in_progress\"}\n",
		"gateway answered sublytics: 401 x3: {\"error\":\"unauthorized\"}\n",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "gateway answered usaepay: 409") {
		t.Errorf("the 409 answers are reported as failures:\n%s", table)
	}
}
