// Package sink is a merchant backend for tests and demos: it receives the
// gateway's canonical events, parses each with the CloudEvents SDK,
// validates it against the canonical JSON Schema, checks the Standard
// Webhooks signature, records the delivery and answers 2xx. It can also
// misbehave on purpose (5xx answers, latency, refusal windows) so the
// gateway's retries are exercised.
package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/santhosh-tekuri/jsonschema/v6"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Default header names for the gateway's attempt counter and replay flag.
// They are configurable because the delivery engine owns their spelling.
const (
	DefaultAttemptHeader = "Webhook-Attempt"
	DefaultReplayHeader  = "Webhook-Replay"
)

// cloudEventsJSON is the structured-mode media type the gateway sends.
const cloudEventsJSON = "application/cloudevents+json"

// Refusal modes.
const (
	// RefuseUnavailable answers 503.
	RefuseUnavailable = "503"
	// RefuseClose closes the connection without an answer.
	RefuseClose = "close"
)

// Faults make the sink misbehave. The zero value is a healthy backend.
type Faults struct {
	// FailShare is the share of requests answered with FailStatus
	// (default 503) before they are read.
	FailShare  float64 `json:"fail_share,omitempty"`
	FailStatus int     `json:"fail_status,omitempty"`
	// Latency delays every answer, plus a random part up to
	// LatencyJitter.
	Latency       time.Duration `json:"latency,omitempty"`
	LatencyJitter time.Duration `json:"latency_jitter,omitempty"`
	// RefuseAfter and RefuseFor define a window, measured from the sink's
	// start, during which every request is refused the RefuseMode way
	// (RefuseUnavailable by default). RefuseFor 0 means no window.
	RefuseAfter time.Duration `json:"refuse_after,omitempty"`
	RefuseFor   time.Duration `json:"refuse_for,omitempty"`
	RefuseMode  string        `json:"refuse_mode,omitempty"`
	// RetryAfter, when set, is sent as Retry-After (whole seconds, at least
	// 1) on every 5xx fault answer, so the gateway's honouring of it can be
	// observed.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// Config configures a Sink.
type Config struct {
	// Secrets are Standard Webhooks signing secrets ("whsec_<base64>").
	// When any is set, every delivery must carry a valid signature under
	// one of them (several allow rotation).
	Secrets []string `json:"-"`
	// Validate checks a delivered body against the canonical event's JSON
	// Schema (schemas.NewJSONSchemaValidator gives one). When nil, Schema
	// is compiled instead; when both are nil, schema validation is skipped
	// and only the CloudEvents SDK's own checks run.
	Validate func(doc []byte) error `json:"-"`
	// Schema is a JSON Schema document to validate deliveries against.
	Schema []byte `json:"-"`
	// Faults are the initial faults; SetFaults changes them at run time.
	Faults Faults `json:"faults"`
	// AttemptHeader and ReplayHeader name the gateway's attempt counter
	// and replay flag (defaults DefaultAttemptHeader, DefaultReplayHeader).
	AttemptHeader string `json:"attempt_header,omitempty"`
	ReplayHeader  string `json:"replay_header,omitempty"`
	// MaxBody bounds a request body (default 10 MiB).
	MaxBody int64 `json:"max_body,omitempty"`
	// Seed makes fault picks reproducible; 0 is random.
	Seed uint64 `json:"seed,omitempty"`
}

// Delivery is one canonical event the sink accepted.
type Delivery struct {
	// Seq numbers accepted deliveries in arrival order.
	Seq      int64     `json:"seq"`
	Source   string    `json:"source"`
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Subject  string    `json:"subject,omitempty"`
	Provider string    `json:"provider,omitempty"`
	Time     time.Time `json:"time"`
	Received time.Time `json:"received"`
	// Attempt is the gateway's attempt header, 0 when absent or not a
	// number.
	Attempt int `json:"attempt,omitempty"`
	// Replay is set when the gateway marked the delivery as an operator
	// replay; replays do not count as doubled deliveries.
	Replay bool `json:"replay,omitempty"`
	// IdempotencyKey is the Idempotency-Key header.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// WebhookID is the Standard Webhooks webhook-id header.
	WebhookID string `json:"webhook_id,omitempty"`
	// Signed is set when a signature was verified.
	Signed bool `json:"signed,omitempty"`
}

// Rejection is one request the sink answered 4xx because the event was
// invalid.
type Rejection struct {
	Received time.Time `json:"received"`
	Status   int       `json:"status"`
	Reason   string    `json:"reason"`
	// ID is the event id when it could be read.
	ID string `json:"id,omitempty"`
}

// Stats counts requests by outcome.
type Stats struct {
	Requests  int64 `json:"requests"`
	Delivered int64 `json:"delivered"`
	// Invalid counts deliveries rejected with 4xx: unparsable, not valid
	// CloudEvents, failing the schema, bad signature, mismatched
	// Idempotency-Key.
	Invalid      int64 `json:"invalid"`
	BadSignature int64 `json:"bad_signature"`
	// Failed counts injected 5xx answers, Refused the requests met inside
	// the refusal window (503 or closed).
	Failed  int64 `json:"failed"`
	Refused int64 `json:"refused"`
	// MissingIdempotencyKey counts accepted deliveries without the header.
	MissingIdempotencyKey int64 `json:"missing_idempotency_key"`
}

// Sink is the merchant backend; it is an http.Handler.
type Sink struct {
	cfg      Config
	hooks    []*standardwebhooks.Webhook
	validate func([]byte) error
	start    time.Time
	faults   atomic.Pointer[Faults]
	refusing atomic.Bool

	rngMu sync.Mutex
	rng   *rand.Rand

	mu         sync.Mutex
	deliveries []Delivery
	rejections []Rejection
	stats      Stats
}

// New builds a Sink; it fails on a malformed secret or schema, so a
// misconfigured sink never silently accepts everything.
func New(cfg Config) (*Sink, error) {
	if cfg.AttemptHeader == "" {
		cfg.AttemptHeader = DefaultAttemptHeader
	}
	if cfg.ReplayHeader == "" {
		cfg.ReplayHeader = DefaultReplayHeader
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20
	}
	if err := checkFaults(&cfg.Faults); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, start: time.Now()}
	for _, sec := range cfg.Secrets {
		if !strings.HasPrefix(sec, "whsec_") {
			return nil, errors.New("sink: signing secrets must start with whsec_")
		}
		wh, err := standardwebhooks.NewWebhook(sec)
		if err != nil {
			return nil, fmt.Errorf("sink: signing secret: %w", err)
		}
		s.hooks = append(s.hooks, wh)
	}
	s.validate = cfg.Validate
	if s.validate == nil && cfg.Schema != nil {
		sch, err := CompileSchema(cfg.Schema)
		if err != nil {
			return nil, err
		}
		s.validate = func(doc []byte) error {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
			if err != nil {
				return err
			}
			return sch.Validate(inst)
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s.rng = rand.New(rand.NewPCG(seed, seed>>1|1))
	f := cfg.Faults
	s.faults.Store(&f)
	return s, nil
}

func checkFaults(f *Faults) error {
	if f.FailShare < 0 || f.FailShare > 1 {
		return errors.New("sink: fail share must be in [0,1]")
	}
	if f.FailStatus == 0 {
		f.FailStatus = http.StatusServiceUnavailable
	}
	if f.FailStatus < 500 || f.FailStatus > 599 {
		return errors.New("sink: fail status must be a 5xx")
	}
	switch f.RefuseMode {
	case "":
		f.RefuseMode = RefuseUnavailable
	case RefuseUnavailable, RefuseClose:
	default:
		return fmt.Errorf("sink: refuse mode %q (want %s or %s)", f.RefuseMode, RefuseUnavailable, RefuseClose)
	}
	if f.Latency < 0 || f.LatencyJitter < 0 || f.RefuseAfter < 0 || f.RefuseFor < 0 || f.RetryAfter < 0 {
		return errors.New("sink: durations must not be negative")
	}
	return nil
}

// CompileSchema compiles a JSON Schema document with format assertions on,
// so "date-time" and "uri-reference" are checked, not just annotated.
func CompileSchema(doc []byte) (*jsonschema.Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("sink: schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const loc = "urn:webhook-harness:canonical-event.schema.json"
	if err := c.AddResource(loc, v); err != nil {
		return nil, fmt.Errorf("sink: schema: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("sink: schema: %w", err)
	}
	return sch, nil
}

// SetFaults replaces the faults; the refusal window stays measured from
// the sink's start.
func (s *Sink) SetFaults(f Faults) error {
	if err := checkFaults(&f); err != nil {
		return err
	}
	s.faults.Store(&f)
	return nil
}

// Faults returns the faults in force.
func (s *Sink) Faults() Faults { return *s.faults.Load() }

// SetRefusing refuses every request (the RefuseMode way) until called with
// false, independent of the configured window.
func (s *Sink) SetRefusing(on bool) { s.refusing.Store(on) }

// Deliveries returns a copy of the accepted deliveries in arrival order.
func (s *Sink) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deliveries)
}

// Rejections returns a copy of the invalid requests.
func (s *Sink) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejections)
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Reset forgets every delivery, rejection and counter (not the faults).
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliveries, s.rejections, s.stats = nil, nil, Stats{}
}

func (s *Sink) count(fn func(*Stats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

func (s *Sink) float() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *Sink) inRefusal(f *Faults, now time.Time) bool {
	if s.refusing.Load() {
		return true
	}
	if f.RefuseFor <= 0 {
		return false
	}
	since := now.Sub(s.start)
	return since >= f.RefuseAfter && since < f.RefuseAfter+f.RefuseFor
}

// ServeHTTP handles one delivery.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.count(func(st *Stats) { st.Requests++ })
	f := s.faults.Load()

	if s.inRefusal(f, now) {
		s.count(func(st *Stats) { st.Refused++ })
		if f.RefuseMode == RefuseClose {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			// No hijacking (HTTP/2): abort the handler, which resets
			// the stream.
			panic(http.ErrAbortHandler)
		}
		s.fault(w, f, http.StatusServiceUnavailable, "refusing deliveries")
		return
	}
	if d := f.Latency + s.jitter(f.LatencyJitter); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.FailShare > 0 && s.float() < f.FailShare {
		s.count(func(st *Stats) { st.Failed++ })
		s.fault(w, f, f.FailStatus, "injected failure")
		return
	}

	if r.Method != http.MethodPost {
		s.reject(w, http.StatusMethodNotAllowed, "method "+r.Method, "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		s.reject(w, http.StatusBadRequest, "reading body: "+err.Error(), "")
		return
	}
	if int64(len(body)) > s.cfg.MaxBody {
		s.reject(w, http.StatusRequestEntityTooLarge, "body too large", "")
		return
	}
	d, status, err := s.check(r, body)
	if err != nil {
		if status == http.StatusUnauthorized {
			s.count(func(st *Stats) { st.BadSignature++ })
		}
		s.reject(w, status, err.Error(), d.ID)
		return
	}
	d.Received = now
	s.mu.Lock()
	s.stats.Delivered++
	if d.IdempotencyKey == "" {
		s.stats.MissingIdempotencyKey++
	}
	d.Seq = s.stats.Delivered
	s.deliveries = append(s.deliveries, d)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"received"}`)
}

// check authenticates, parses and validates one request. It returns the
// delivery to record, or the status and reason to reject it with.
func (s *Sink) check(r *http.Request, body []byte) (Delivery, int, error) {
	var d Delivery
	if len(s.hooks) > 0 {
		var err error
		for _, wh := range s.hooks {
			if err = wh.Verify(body, r.Header); err == nil {
				d.Signed = true
				break
			}
		}
		if !d.Signed {
			return d, http.StatusUnauthorized, fmt.Errorf("signature: %w", err)
		}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != cloudEventsJSON {
		return d, http.StatusBadRequest, fmt.Errorf("content type %q: want %s (structured mode)", r.Header.Get("Content-Type"), cloudEventsJSON)
	}
	// The SDK consumes the body; hand it a copy of the bytes already read
	// (the signature had to be checked on them first).
	req := r.Clone(r.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	ev, err := cehttp.NewEventFromHTTPRequest(req)
	if err != nil {
		return d, http.StatusBadRequest, fmt.Errorf("cloudevents: %w", err)
	}
	d.ID = ev.ID()
	if err := ev.Validate(); err != nil {
		return d, http.StatusBadRequest, fmt.Errorf("cloudevents: %w", err)
	}
	if s.validate != nil {
		if err := s.validate(body); err != nil {
			return d, http.StatusBadRequest, fmt.Errorf("schema: %s", oneLine(err))
		}
	}
	d.Source = ev.Source()
	d.Type = ev.Type()
	d.Subject = ev.Subject()
	d.Time = ev.Time()
	if p, ok := ev.Extensions()["provider"].(string); ok {
		d.Provider = p
	}
	d.IdempotencyKey = r.Header.Get("Idempotency-Key")
	if d.IdempotencyKey != "" && d.IdempotencyKey != d.ID {
		return d, http.StatusBadRequest, fmt.Errorf("Idempotency-Key %q does not match id %q", d.IdempotencyKey, d.ID)
	}
	d.WebhookID = r.Header.Get(standardwebhooks.HeaderWebhookID)
	d.Attempt, _ = strconv.Atoi(strings.TrimSpace(r.Header.Get(s.cfg.AttemptHeader)))
	d.Replay = truthy(r.Header.Get(s.cfg.ReplayHeader))
	return d, 0, nil
}

// truthy reads a flag header: anything but empty, "0" or "false".
func truthy(v string) bool {
	v = strings.TrimSpace(strings.ToLower(v))
	return v != "" && v != "0" && v != "false" && v != "no"
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (s *Sink) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return time.Duration(s.rng.Int64N(int64(d)))
}

func (s *Sink) fault(w http.ResponseWriter, f *Faults, status int, msg string) {
	if f.RetryAfter > 0 {
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *Sink) reject(w http.ResponseWriter, status int, reason, id string) {
	s.mu.Lock()
	s.stats.Invalid++
	s.rejections = append(s.rejections, Rejection{Received: time.Now(), Status: status, Reason: reason, ID: id})
	s.mu.Unlock()
	writeJSON(w, status, map[string]string{"error": reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
