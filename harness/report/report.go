// Package report compares what the simulator sent and the gateway
// acknowledged with what the sink received: the numbers that say whether the
// gateway lost or doubled anything.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
)

// Counts are one provider's numbers, or the totals.
type Counts struct {
	// Sent: logical events (originals), exact duplicate sends, re-encoded
	// redeliveries, repeated real updates (same bytes after the dedup
	// window), provider retries (attempt > 1), and all HTTP requests.
	Unique       int `json:"unique"`
	Duplicates   int `json:"duplicates"`
	Redeliveries int `json:"redeliveries"`
	Repeats      int `json:"repeats"`
	Retries      int `json:"retries"`
	Requests     int `json:"requests"`

	// Gateway answers, per request. Acknowledged is every 2xx, split into
	// Accepted and DuplicateAnswers (200 "duplicate").
	Acknowledged     int `json:"acknowledged"`
	Accepted         int `json:"accepted"`
	DuplicateAnswers int `json:"duplicate_answers"`
	Rejected         int `json:"rejected"` // 4xx but 409
	// InProgress counts 409 "in_progress": a copy arrived while the
	// gateway was still forwarding the first one; the provider retries.
	InProgress   int `json:"in_progress"`
	ServerErrors int `json:"server_errors"` // 5xx
	NoAnswer     int `json:"no_answer"`     // timeout or network error
	OtherStatus  int `json:"other_status"`  // 1xx, 3xx

	// Canonical events, by (source, id), or for a provider whose ids the
	// gateway derives by content key and time (see Build). Expected
	// counts the events the bodies sent can make at most, AckedEvents
	// those the acknowledged bodies make at least.
	Expected    int `json:"expected"`
	AckedEvents int `json:"acked_events"`
	// Delivered counts distinct keys the sink received (replays
	// included); Doubled the keys received more than once not counting
	// replays, and ExtraDeliveries the surplus deliveries of those keys.
	Delivered       int `json:"delivered"`
	Doubled         int `json:"doubled"`
	ExtraDeliveries int `json:"extra_deliveries"`
	Replays         int `json:"replays"`
	// Lost counts acknowledged keys never delivered.
	Lost int `json:"lost"`
	// DeliveredUnacked counts events delivered though no acknowledged
	// body requires them (e.g. a loyalty request that timed out after the
	// gateway stored it, or identical content sent about one dedup window
	// apart that the gateway took as two events): not an error.
	DeliveredUnacked int `json:"delivered_unacked"`
	// Unexpected counts delivered keys no sent body should produce: a
	// sign the gateway derives ids differently from normalize.
	Unexpected int `json:"unexpected"`
	// KeyErrors counts bodies whose expected keys could not be computed.
	KeyErrors int `json:"key_errors"`

	// Latency is from a key's first send to its first non-replay
	// delivery, over LatencyN delivered keys.
	LatencyN   int           `json:"latency_n"`
	LatencyP50 time.Duration `json:"latency_p50"`
	LatencyP99 time.Duration `json:"latency_p99"`
	LatencyMax time.Duration `json:"latency_max"`
}

// Report is the outcome of one run.
type Report struct {
	// Counts are the totals over every provider.
	Counts
	// Providers holds per-provider counts, keyed by provider name.
	Providers map[string]*Counts `json:"providers"`
	// HasSink is false when no sink data was given: the delivery half of
	// the counts (Delivered, Doubled, Lost, latencies...) is then zero.
	HasSink bool `json:"has_sink"`
	// InvalidAtSink is the number of deliveries the sink rejected as
	// invalid (bad CloudEvent, schema, signature, Idempotency-Key).
	InvalidAtSink int64 `json:"invalid_at_sink"`
	// SinkFaults is the number of requests the sink failed or refused on
	// purpose.
	SinkFaults int64 `json:"sink_faults"`
	// LostKeys, DoubledKeys and UnexpectedKeys list up to MaxListed keys of
	// each kind, sorted, for the failure message.
	LostKeys       []sim.Key `json:"lost_keys,omitempty"`
	DoubledKeys    []sim.Key `json:"doubled_keys,omitempty"`
	UnexpectedKeys []sim.Key `json:"unexpected_keys,omitempty"`
	// ErrorAnswers groups the answers other than 2xx by provider and
	// status (or network error), up to MaxListed groups, each with its
	// first answer as a sample: usually enough to spot a wrong path or
	// secret.
	ErrorAnswers []ErrorAnswer `json:"error_answers,omitempty"`
	// KeyErrorSample is one expected-key error, if any.
	KeyErrorSample string `json:"key_error_sample,omitempty"`
	// Elapsed is from the first send to the last send or delivery.
	Elapsed time.Duration `json:"elapsed"`
	// Second is the report of a second destination's sink, over the
	// sends of the providers whose routes deliver there: each of their
	// acknowledged events must reach it exactly once too. Nil without
	// one.
	Second *Report `json:"second_destination,omitempty"`
	// Name says what a Second report is about.
	Name string `json:"name,omitempty"`
}

// undelivered is how many acknowledged events have reached neither sink
// they should have: r's own, and its Second's.
func (r *Report) undelivered() int {
	n := r.Lost
	if r.Second != nil {
		n += r.Second.Lost
	}
	return n
}

// ErrorAnswer is one group of non-2xx answers.
type ErrorAnswer struct {
	Provider string `json:"provider"`
	// Status is the HTTP status, 0 for a timeout or network error.
	Status int `json:"status"`
	Count  int `json:"count"`
	// Sample is the first answer's body, or the client error.
	Sample string `json:"sample"`
}

func (a ErrorAnswer) String() string {
	return fmt.Sprintf("%s: %d x%d: %s", a.Provider, a.Status, a.Count, a.Sample)
}

// MaxListed bounds the key lists in a Report.
const MaxListed = 20

// Input is what Build compares.
type Input struct {
	Sends []sim.Send
	// Deliveries and SinkStats come from the sink; with HasSink false
	// they are ignored.
	Deliveries []sink.Delivery
	SinkStats  sink.Stats
	HasSink    bool
}

type keyState struct {
	provider    string
	sent        bool
	firstSend   time.Time
	acked       bool
	deliveries  int // non-replay
	replays     int
	firstDeliv  time.Time
	anyDelivery bool
}

// Build computes a Report: it reads the sends, then the sink's deliveries,
// then tallies each event key (and each group of content-keyed sends).
func Build(in Input) *Report {
	b := &builder{
		r:         &Report{Providers: map[string]*Counts{}, HasSink: in.HasSink},
		hasSink:   in.HasSink,
		keys:      map[sim.Key]*keyState{},
		groups:    map[sim.Key]*contentGroup{},
		byPrefix:  map[sim.Key]*contentGroup{},
		seenEvent: map[string]bool{},
		answerIdx: map[string]int{},
		latencies: map[string][]time.Duration{},
	}
	for i := range in.Sends {
		b.send(&in.Sends[i])
	}
	if in.HasSink {
		b.r.InvalidAtSink = in.SinkStats.Invalid
		b.r.SinkFaults = in.SinkStats.Failed + in.SinkStats.Refused
		for i := range in.Deliveries {
			b.delivery(&in.Deliveries[i])
		}
	}
	if !b.first.IsZero() {
		b.r.Elapsed = b.last.Sub(b.first)
	}
	b.tallyKeys()
	b.tallyGroups()
	for name, c := range b.r.Providers {
		setLatency(c, b.latencies[name])
		b.r.Counts.add(c)
	}
	setLatency(&b.r.Counts, b.all)
	return b.r
}

// builder is what Build gathers on its way through the sends and the
// deliveries.
type builder struct {
	r       *Report
	hasSink bool
	keys    map[sim.Key]*keyState
	// groups are the sends keyed by content (no event id), byPrefix the
	// same groups by the prefix of the ids the gateway derives for them.
	groups      map[sim.Key]*contentGroup
	byPrefix    map[sim.Key]*contentGroup
	first, last time.Time
	seenEvent   map[string]bool // provider/event of the originals counted
	answerIdx   map[string]int  // an error answer group's index in r.ErrorAnswers
	latencies   map[string][]time.Duration
	all         []time.Duration
}

// provider returns the counts of the provider named name.
func (b *builder) provider(name string) *Counts {
	if name == "" {
		name = "unknown"
	}
	c := b.r.Providers[name]
	if c == nil {
		c = &Counts{}
		b.r.Providers[name] = c
	}
	return c
}

// send counts one request and notes the keys it carried.
func (b *builder) send(s *sim.Send) {
	c := b.provider(s.Provider)
	countRequest(c, s)
	if ek := fmt.Sprintf("%s/%d", s.Provider, s.Event); s.Kind == sim.Original && !b.seenEvent[ek] {
		b.seenEvent[ek] = true
		c.Unique++
	}
	if !s.Acked() {
		b.errorAnswer(s)
	}
	if s.KeyErr != "" && s.Attempt == 1 {
		c.KeyErrors++
		if b.r.KeyErrorSample == "" {
			b.r.KeyErrorSample = s.KeyErr
		}
	}
	if !s.Start.IsZero() {
		if b.first.IsZero() || s.Start.Before(b.first) {
			b.first = s.Start
		}
		if end := s.Start.Add(s.Latency); end.After(b.last) {
			b.last = end
		}
	}
	for _, k := range s.Keys {
		if k.Content {
			g := b.groups[k]
			if g == nil {
				g = &contentGroup{provider: s.Provider, window: s.DedupWindow, ids: map[string]*idState{}}
				b.groups[k] = g
				b.byPrefix[prefixKey(k)] = g
			}
			if !s.Start.IsZero() {
				g.sends = append(g.sends, reachOf(s))
			}
			continue
		}
		st := b.keys[k]
		if st == nil {
			st = &keyState{provider: s.Provider, firstSend: s.Start}
			b.keys[k] = st
		}
		st.sent = true
		if !s.Start.IsZero() && (st.firstSend.IsZero() || s.Start.Before(st.firstSend)) {
			st.firstSend = s.Start
		}
		if s.Acked() {
			st.acked = true
		}
	}
}

// countRequest counts a request by kind and by the gateway's answer.
func countRequest(c *Counts, s *sim.Send) {
	c.Requests++
	switch {
	case s.Attempt > 1:
		c.Retries++
	case s.Kind == sim.Duplicate:
		c.Duplicates++
	case s.Kind == sim.Redelivery:
		c.Redeliveries++
	case s.Kind == sim.Repeat:
		c.Repeats++
	}
	switch {
	case s.Acked():
		c.Acknowledged++
		if s.DuplicateAnswer() {
			c.DuplicateAnswers++
		} else {
			c.Accepted++
		}
	case s.Status == http.StatusConflict:
		c.InProgress++
	case s.Status >= 400 && s.Status < 500:
		c.Rejected++
	case s.Status >= 500:
		c.ServerErrors++
	case s.Status == 0:
		c.NoAnswer++
	default:
		c.OtherStatus++
	}
}

// errorAnswer adds an answer other than 2xx to its group (provider and
// status), keeping the first one's body as the group's sample.
func (b *builder) errorAnswer(s *sim.Send) {
	group := fmt.Sprintf("%s %d", s.Provider, s.Status)
	if s.Status == 0 {
		// Timeouts and refused connections are different
		// problems; the error's first word tells them apart.
		group += " " + strings.Fields(s.Err + " -")[0]
	}
	if i, ok := b.answerIdx[group]; ok {
		b.r.ErrorAnswers[i].Count++
	} else if len(b.r.ErrorAnswers) < MaxListed {
		b.answerIdx[group] = len(b.r.ErrorAnswers)
		sample := strings.TrimSpace(s.Response)
		if s.Status == 0 {
			sample = s.Err
		}
		b.r.ErrorAnswers = append(b.r.ErrorAnswers, ErrorAnswer{Provider: s.Provider, Status: s.Status, Count: 1, Sample: sample})
	}
}

// delivery notes one delivery the sink received.
func (b *builder) delivery(d *sink.Delivery) {
	k := sim.Key{Source: d.Source, ID: d.ID}
	if d.Received.After(b.last) {
		b.last = d.Received
	}
	if g := b.byPrefix[derivedPrefix(k)]; g != nil && b.keys[k] == nil {
		g.deliver(d)
		return
	}
	st := b.keys[k]
	if st == nil {
		st = &keyState{provider: d.Provider}
		b.keys[k] = st
	}
	st.anyDelivery = true
	if d.Replay {
		st.replays++
	} else {
		st.deliveries++
		if st.firstDeliv.IsZero() || d.Received.Before(st.firstDeliv) {
			st.firstDeliv = d.Received
		}
	}
}

// tallyKeys counts each id-keyed event as expected, lost, doubled or
// unexpected, in key order so the listed keys are stable.
func (b *builder) tallyKeys() {
	r := b.r
	for _, k := range sortedKeys(b.keys) {
		st := b.keys[k]
		c := b.provider(st.provider)
		sent := st.sent
		if sent {
			c.Expected++
		}
		if st.acked {
			c.AckedEvents++
		}
		if st.anyDelivery {
			c.Delivered++
			c.Replays += st.replays
			if !sent {
				c.Unexpected++
				if len(r.UnexpectedKeys) < MaxListed {
					r.UnexpectedKeys = append(r.UnexpectedKeys, k)
				}
			} else if !st.acked {
				c.DeliveredUnacked++
			}
		} else if st.acked && b.hasSink {
			c.Lost++
			if len(r.LostKeys) < MaxListed {
				r.LostKeys = append(r.LostKeys, k)
			}
		}
		if st.deliveries > 1 {
			c.Doubled++
			c.ExtraDeliveries += st.deliveries - 1
			if len(r.DoubledKeys) < MaxListed {
				r.DoubledKeys = append(r.DoubledKeys, k)
			}
		}
		if sent && !st.firstDeliv.IsZero() && !st.firstSend.IsZero() {
			b.latency(st.provider, st.firstDeliv.Sub(st.firstSend))
		}
	}
}

// tallyGroups counts the content-keyed sends, group by group in key order.
func (b *builder) tallyGroups() {
	for _, k := range sortedKeys(b.groups) {
		g := b.groups[k]
		for _, l := range g.tally(b.r, b.provider(g.provider), k, b.hasSink) {
			b.latency(g.provider, l)
		}
	}
}

func (b *builder) latency(provider string, l time.Duration) {
	b.latencies[provider] = append(b.latencies[provider], l)
	b.all = append(b.all, l)
}

// sortedKeys returns m's keys in the order of their text.
func sortedKeys[V any](m map[sim.Key]V) []sim.Key {
	out := make([]sim.Key, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// add sums the counters of o into c (not the latencies).
func (c *Counts) add(o *Counts) {
	c.Unique += o.Unique
	c.Duplicates += o.Duplicates
	c.Redeliveries += o.Redeliveries
	c.Repeats += o.Repeats
	c.Retries += o.Retries
	c.Requests += o.Requests
	c.Acknowledged += o.Acknowledged
	c.Accepted += o.Accepted
	c.DuplicateAnswers += o.DuplicateAnswers
	c.Rejected += o.Rejected
	c.InProgress += o.InProgress
	c.ServerErrors += o.ServerErrors
	c.NoAnswer += o.NoAnswer
	c.OtherStatus += o.OtherStatus
	c.Expected += o.Expected
	c.AckedEvents += o.AckedEvents
	c.Delivered += o.Delivered
	c.Doubled += o.Doubled
	c.ExtraDeliveries += o.ExtraDeliveries
	c.Replays += o.Replays
	c.Lost += o.Lost
	c.DeliveredUnacked += o.DeliveredUnacked
	c.Unexpected += o.Unexpected
	c.KeyErrors += o.KeyErrors
}

func setLatency(c *Counts, l []time.Duration) {
	c.LatencyN = len(l)
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	c.LatencyP50 = Percentile(l, 50)
	c.LatencyP99 = Percentile(l, 99)
	c.LatencyMax = l[len(l)-1]
}

// Percentile is the nearest-rank percentile p (0-100] of sorted values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank: the smallest value with at least p% of the values at
	// or below it.
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// OK reports whether nothing was lost, doubled, unexpected or invalid.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Doubled == 0 && r.Unexpected == 0 && r.InvalidAtSink == 0 && r.KeyErrors == 0 &&
		(r.Second == nil || r.Second.OK())
}

// Problems describes what is wrong, or returns "".
func (r *Report) Problems() string {
	var p []string
	list := func(keys []sim.Key) string {
		s := make([]string, len(keys))
		for i, k := range keys {
			s[i] = k.String()
		}
		return strings.Join(s, ", ")
	}
	if r.Lost > 0 {
		p = append(p, fmt.Sprintf("%d lost (%s)", r.Lost, list(r.LostKeys)))
	}
	if r.Doubled > 0 {
		p = append(p, fmt.Sprintf("%d doubled (%s)", r.Doubled, list(r.DoubledKeys)))
	}
	if r.Unexpected > 0 {
		p = append(p, fmt.Sprintf("%d unexpected (%s)", r.Unexpected, list(r.UnexpectedKeys)))
	}
	if r.InvalidAtSink > 0 {
		p = append(p, fmt.Sprintf("%d invalid at the sink", r.InvalidAtSink))
	}
	if r.KeyErrors > 0 {
		p = append(p, fmt.Sprintf("%d bodies without expected keys (%s)", r.KeyErrors, r.KeyErrorSample))
	}
	if r.Second != nil && !r.Second.OK() {
		p = append(p, r.Second.Name+": "+r.Second.Problems())
	}
	return strings.Join(p, "; ")
}

type row struct {
	label string
	get   func(*Counts) string
	// totalOnly rows show a value in the total column alone.
	total func(*Report) string
}

func num(f func(*Counts) int) func(*Counts) string {
	return func(c *Counts) string { return fmt.Sprint(f(c)) }
}

func dur(f func(*Counts) time.Duration) func(*Counts) string {
	return func(c *Counts) string {
		if c.LatencyN == 0 {
			return "-"
		}
		d := f(c)
		if d >= time.Second {
			return d.Round(time.Millisecond).String()
		}
		return d.Round(100 * time.Microsecond).String()
	}
}

// legend follows the table: how its counts relate, which the labels alone
// do not say.
const legend = `
"sent" counts requests by why they were sent; "unique events" counts a
loyalty batch once. "accepted" counts the requests the gateway took as new.
"events expected" counts the canonical events the bodies can make at most:
one per loyalty batch item, and one more per repeated update (the same
bytes after the dedup window, a real second update). So it can exceed both.
"in progress (409, retried)": a copy of a sync event came while the first
was being delivered; the provider retried it. Expected, not a failure.

`

// WriteTable prints the report as an aligned table: one row per number, one
// column per provider plus the total.
func (r *Report) WriteTable(w io.Writer) error {
	rows := []row{
		{label: "sent  unique events", get: num(func(c *Counts) int { return c.Unique })},
		{label: "      exact duplicates", get: num(func(c *Counts) int { return c.Duplicates })},
		{label: "      redeliveries", get: num(func(c *Counts) int { return c.Redeliveries })},
		{label: "      repeated updates (same bytes, later)", get: num(func(c *Counts) int { return c.Repeats })},
		{label: "      provider retries", get: num(func(c *Counts) int { return c.Retries })},
		{label: "      requests", get: num(func(c *Counts) int { return c.Requests })},
		{label: "gateway  acknowledged (2xx)", get: num(func(c *Counts) int { return c.Acknowledged })},
		{label: "         accepted", get: num(func(c *Counts) int { return c.Accepted })},
		{label: "         duplicate answers", get: num(func(c *Counts) int { return c.DuplicateAnswers })},
		{label: "         in progress (409, retried)", get: num(func(c *Counts) int { return c.InProgress })},
		{label: "         rejected (other 4xx)", get: num(func(c *Counts) int { return c.Rejected })},
		{label: "         server errors (5xx)", get: num(func(c *Counts) int { return c.ServerErrors })},
		{label: "         no answer (timeout, network)", get: num(func(c *Counts) int { return c.NoAnswer })},
		{label: "events  expected", get: num(func(c *Counts) int { return c.Expected })},
		{label: "        acknowledged", get: num(func(c *Counts) int { return c.AckedEvents })},
	}
	if r.HasSink {
		rows = append(rows,
			row{label: "sink  delivered unique", get: num(func(c *Counts) int { return c.Delivered })},
			row{label: "      doubled", get: num(func(c *Counts) int { return c.Doubled })},
			row{label: "      replays", get: num(func(c *Counts) int { return c.Replays })},
			row{label: "      LOST (acked, not delivered)", get: num(func(c *Counts) int { return c.Lost })},
			row{label: "      delivered though unacked", get: num(func(c *Counts) int { return c.DeliveredUnacked })},
			row{label: "      unexpected", get: num(func(c *Counts) int { return c.Unexpected })},
			row{label: "      invalid at sink", total: func(r *Report) string { return fmt.Sprint(r.InvalidAtSink) }},
			row{label: "      sink faults injected", total: func(r *Report) string { return fmt.Sprint(r.SinkFaults) }},
			row{label: "latency  first send to delivery p50", get: dur(func(c *Counts) time.Duration { return c.LatencyP50 })},
			row{label: "         p99", get: dur(func(c *Counts) time.Duration { return c.LatencyP99 })},
			row{label: "         max", get: dur(func(c *Counts) time.Duration { return c.LatencyMax })},
		)
	}
	names := make([]string, 0, len(r.Providers))
	for n := range r.Providers {
		names = append(names, n)
	}
	slices.Sort(names)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t", n)
	}
	fmt.Fprint(tw, "total\t\n")
	for _, rw := range rows {
		// AlignRight would right-align the labels too; pad them so the
		// first column reads left-aligned.
		fmt.Fprintf(tw, "%-42s\t", rw.label)
		for _, n := range names {
			v := ""
			if rw.get != nil {
				v = rw.get(r.Providers[n])
			}
			fmt.Fprintf(tw, "%s\t", v)
		}
		if rw.total != nil {
			fmt.Fprintf(tw, "%s\t\n", rw.total(r))
		} else {
			fmt.Fprintf(tw, "%s\t\n", rw.get(&r.Counts))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprint(w, legend)
	for _, a := range r.ErrorAnswers {
		if a.Status == http.StatusConflict {
			// A sync route's answer to a copy that came while the first
			// was being delivered: the provider retries it, and the
			// retry is counted above. Not a failure.
			fmt.Fprintf(w, "retried as expected after 409 in progress: %s x%d: %s\n", a.Provider, a.Count, a.Sample)
			continue
		}
		fmt.Fprintln(w, "gateway answered "+a.String())
	}
	if !r.HasSink {
		_, err := fmt.Fprintln(w, "(no sink data: deliveries not compared)")
		return err
	}
	if r.Second != nil {
		fmt.Fprintf(w, "\n%s:\n", r.Second.Name)
		if err := r.Second.WriteTable(w); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if p := r.Problems(); p != "" {
		_, err := fmt.Fprintln(w, "PROBLEMS: "+p)
		return err
	}
	what := "every acknowledged event delivered exactly once"
	if r.Second != nil {
		what += ", to each destination"
	}
	_, err := fmt.Fprintf(w, "OK: %s (%s elapsed)\n", what, r.Elapsed.Round(time.Millisecond))
	return err
}

// Table returns WriteTable's output.
func (r *Report) Table() string {
	var b strings.Builder
	_ = r.WriteTable(&b)
	return b.String()
}

// ErrIncomplete is returned by Wait when the deadline passes with
// acknowledged events still undelivered.
var ErrIncomplete = errors.New("report: acknowledged events still undelivered")

// WaitOptions tune Wait.
type WaitOptions struct {
	// Timeout bounds the wait (default 30s); the context may end it
	// earlier.
	Timeout time.Duration
	// Poll is the interval between builds (default 50ms).
	Poll time.Duration
	// Settle keeps watching this long after everything arrived, so late
	// doubled deliveries are counted too.
	Settle time.Duration
}

// Wait builds reports until every acknowledged event has been delivered
// (Lost == 0; so build must include sink data), then waits Settle and returns the final report. When the
// deadline passes first it returns the last report with ErrIncomplete; a
// build error is returned as is.
func Wait(ctx context.Context, build func() (*Report, error), opts WaitOptions) (*Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		r, err := build()
		if err != nil {
			return r, err
		}
		if r.undelivered() == 0 {
			if opts.Settle <= 0 {
				return r, nil
			}
			// A deadline inside the settle time still ends the wait
			// with a fresh report: everything had arrived.
			sleep(opts.Settle)
			return build()
		}
		if !sleep(opts.Poll) {
			return r, fmt.Errorf("%w: %d lost after %v", ErrIncomplete, r.undelivered(), opts.Timeout)
		}
	}
}
