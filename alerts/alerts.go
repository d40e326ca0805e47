// Package alerts sends operator events (a destination paused or resumed,
// an event dead, a lane parked) as CloudEvents to one URL, so that they
// reach an on-call tool without polling.
//
// Sending never blocks the caller: Send puts the event on a bounded queue
// in memory and returns. One goroutine POSTs the queue in order, retrying
// an event that gets no 2xx with a growing delay a bounded number of
// times. When the queue is full the new event is dropped and counted
// (Dropped): an alert receiver that is down for hours must cost the
// gateway a bounded amount of memory, and delivery of the webhooks
// themselves must never wait for it. Events are not stored: a restart
// loses what was queued, which the gateway's metrics (the same facts as
// gauges and counters) make up for.
package alerts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The CloudEvents types of operator events.
const (
	// TypeDestinationPaused: a destination's circuit breaker opened (or an
	// operator paused it): nothing is sent to it but probes.
	TypeDestinationPaused = "com.webhookgw.destination.paused"
	// TypeDestinationResumed: the destination takes deliveries again.
	TypeDestinationResumed = "com.webhookgw.destination.resumed"
	// TypeEventDead: a delivery was given up on; an operator replays or
	// skips it.
	TypeEventDead = "com.webhookgw.event.dead"
	// TypeLaneParked: the head of an ordered lane died, so nothing behind
	// it is delivered until it is replayed or skipped.
	TypeLaneParked = "com.webhookgw.lane.parked"
)

// ContentType is how an operator event is sent: a structured-mode
// CloudEvent.
const ContentType = "application/cloudevents+json"

// Defaults of Config.
const (
	DefaultQueue       = 1000
	DefaultMaxAttempts = 8
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultTimeout     = 10 * time.Second
)

// Event is one operator event before it is sent.
type Event struct {
	// Type is one of the Type constants.
	Type string
	// Subject is what the event is about: the destination's name, or for
	// an event dead the event's "<source> <id>".
	Subject string
	// Data is the event's data, encoded as JSON.
	Data any
}

// CloudEvent is the structured-mode CloudEvent a receiver gets.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// Config configures a Sender.
type Config struct {
	// URL is where events are POSTed; required, http or https.
	URL string
	// Source is the CloudEvents source of the events; default
	// "/webhook-gateway".
	Source string
	// Queue bounds the events held in memory (default DefaultQueue).
	Queue int
	// MaxAttempts bounds the attempts of one event (default
	// DefaultMaxAttempts); after the last it is dropped and counted.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts, doubling
	// from the first to the second (defaults 1s and 1m).
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Client sends the requests; default a client with Timeout.
	Client *http.Client
	// Logger logs dropped events; default none.
	Logger *zap.Logger
	// Now is the clock of the events' time; default time.Now.
	Now func() time.Time
}

// Sender queues and sends operator events; see the package doc.
type Sender struct {
	cfg   Config
	queue chan CloudEvent
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	sent, dropped, failedAttempts atomic.Int64
}

// New checks cfg and starts a Sender; Close stops it.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alerts URL %q: want an absolute http or https URL", cfg.URL)
	}
	if cfg.Source == "" {
		cfg.Source = "/webhook-gateway"
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sender{cfg: cfg, queue: make(chan CloudEvent, cfg.Queue), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s, nil
}

// URL is where the sender posts.
func (s *Sender) URL() string { return s.cfg.URL }

// Send queues ev and returns at once; it reports false when the queue was
// full (or the sender closed) and ev was dropped.
func (s *Sender) Send(ev Event) bool {
	ce := CloudEvent{SpecVersion: "1.0", ID: newID(), Source: s.cfg.Source, Type: ev.Type, Subject: ev.Subject,
		Time: s.cfg.Now().UTC(), DataContentType: "application/json"}
	if ev.Data != nil {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			s.drop(ce, fmt.Errorf("encoding its data: %w", err))
			return false
		}
		ce.Data = b
	}
	select {
	case <-s.stop:
		s.drop(ce, errors.New("the sender is closed"))
		return false
	default:
	}
	select {
	case s.queue <- ce:
		return true
	default:
		s.drop(ce, fmt.Errorf("%d alerts are already waiting", s.cfg.Queue))
		return false
	}
}

// Stats are a sender's counters.
type Stats struct {
	// Sent counts events a receiver answered 2xx.
	Sent int64
	// Dropped counts events given up on: queue full, attempts spent, or
	// left queued at Close.
	Dropped int64
	// FailedAttempts counts attempts without a 2xx.
	FailedAttempts int64
}

// Stats returns the sender's counters.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Dropped: s.dropped.Load(), FailedAttempts: s.failedAttempts.Load()}
}

// Close stops the sender; an attempt in flight is cancelled and what is
// still queued is dropped.
func (s *Sender) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	for {
		select {
		case ce := <-s.queue:
			s.drop(ce, errors.New("the gateway is stopping"))
		default:
			return nil
		}
	}
}

func (s *Sender) drop(ce CloudEvent, why error) {
	s.dropped.Add(1)
	s.cfg.Logger.Warn("operator alert dropped", zap.String("type", ce.Type), zap.String("subject", ce.Subject), zap.Error(why))
}

func (s *Sender) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		select {
		case <-s.stop:
			return
		case ce := <-s.queue:
			s.deliver(ctx, ce)
		}
	}
}

// deliver tries one event until it is answered 2xx, its attempts are
// spent, or the sender stops.
func (s *Sender) deliver(ctx context.Context, ce CloudEvent) {
	body, err := json.Marshal(ce)
	if err != nil {
		s.drop(ce, err)
		return
	}
	wait := s.cfg.MinBackoff
	var last error
	for attempt := 1; attempt <= s.cfg.MaxAttempts; attempt++ {
		if last = s.post(ctx, body); last == nil {
			s.sent.Add(1)
			return
		}
		s.failedAttempts.Add(1)
		if attempt == s.cfg.MaxAttempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.drop(ce, fmt.Errorf("the gateway is stopping; last attempt: %w", last))
			return
		case <-t.C:
		}
		wait = min(2*wait, s.cfg.MaxBackoff)
	}
	s.drop(ce, fmt.Errorf("%d attempts failed, the last: %w", s.cfg.MaxAttempts, last))
}

func (s *Sender) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ContentType)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
