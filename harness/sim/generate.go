package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
)

// EventTypes lists every event type the provider documents name; it is the
// normalize package's list, shared so the simulator covers exactly what
// the gateway documents. Treat it as read-only.
var EventTypes = normalize.EventTypes

// providerTimeLayout is the zone-less layout of the subscription and payment
// providers' timestamps.
const providerTimeLayout = "2006-01-02 15:04:05"

// Key is what the gateway deduplicates an expected event by. For a provider
// with event ids it is the canonical (source, id). For a provider whose ids
// the gateway derives (normalize.DerivesIDs) Content is set and ID is the
// item's content key (normalize.ContentKey): every event the gateway
// accepts for it gets an id of its own that begins with the key's first 32
// digits (normalize.DerivedFrom).
type Key struct {
	Source  string `json:"source"`
	ID      string `json:"id"`
	Content bool   `json:"content,omitempty"`
}

// String is "source/id", or "source/<first 32 digits>-*" for a content key:
// the shape of the ids delivered for it.
func (k Key) String() string {
	if k.Content && len(k.ID) > 32 {
		return k.Source + "/" + k.ID[:32] + "-*"
	}
	return k.Source + "/" + k.ID
}

// Event is one provider request body the simulator can send.
type Event struct {
	Provider string
	Type     string
	Body     []byte
	// ProviderID is the provider's own event id ("" for a provider that
	// sends none, like the loyalty platform).
	ProviderID string
	// Items is the number of canonical events the body stands for: the
	// length of a loyalty batch, otherwise 1.
	Items int

	// doc is the body as a document (obj, []any and scalars), kept by the
	// generators of this package so that a redelivery re-encodes it; when
	// nil, a redelivery decodes Body.
	doc any
}

// GenOptions tune the generated payloads.
type GenOptions struct {
	// Seed makes type picks, amounts and layouts reproducible; ids stay
	// fresh regardless (from crypto/rand and the clock), because the
	// gateway's store outlives a run and would see a replayed id as a
	// duplicate. 0 picks a random seed.
	Seed uint64
	// Location is the zone the subscription and payment providers'
	// zone-less timestamps are written in; nil means UTC.
	Location *time.Location
	// SublyticsStartID is the first subscription event id; 0 derives one
	// from the clock so consecutive runs do not collide.
	SublyticsStartID uint64
	// The shares below are probabilities in [0,1]; 0 takes the default
	// NewGenerator documents, a negative value means never.

	// BatchShare is the share of batch-capable loyalty events sent with
	// data as an array; BatchMax bounds the array's length (default 5).
	BatchShare float64
	BatchMax   int
	// CreatedAtShare is the share of loyalty events carrying createdAt.
	// The open-source sender never writes it, so the default is none; the
	// documents' examples show it on a few types.
	CreatedAtShare float64
	// Customers is the size of the loyalty platform's customer pool
	// (default 50). Every loyalty body names pooled entities only, so a
	// small pool makes identical bodies common.
	Customers int
	// NumericIDShare is the share of subscription events whose
	// webhook_event_id is a JSON number (API v2) rather than a string.
	NumericIDShare float64
	// ZeroDateShare is the share of subscription events dated
	// "0000-00-00 00:00:00" (no date).
	ZeroDateShare float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Generator builds realistic provider bodies. It is safe for concurrent use.
type Generator struct {
	opts GenOptions
	mu   sync.Mutex
	rng  *mrand.Rand
	// state is each provider's own state (Provider.State), by name.
	state map[string]any
}

// NewGenerator returns a generator. A zero share takes its default (20%
// loyalty batches of up to 5 items, no loyalty createdAt, numeric
// subscription ids on half of them, 2% zero subscription dates); a negative
// share turns the feature off.
func NewGenerator(opts GenOptions) *Generator {
	def := func(p *float64, d float64) {
		switch {
		case *p == 0:
			*p = d
		case *p < 0:
			*p = 0
		}
	}
	def(&opts.BatchShare, 0.2)
	def(&opts.CreatedAtShare, 0)
	def(&opts.NumericIDShare, 0.5)
	def(&opts.ZeroDateShare, 0.02)
	if opts.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, c := range b {
			opts.Seed = opts.Seed<<8 | uint64(c)
		}
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.BatchMax <= 1 {
		opts.BatchMax = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Customers <= 0 {
		opts.Customers = 50
	}
	g := &Generator{
		opts:  opts,
		rng:   mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		state: map[string]any{},
	}
	for _, p := range registry {
		if p.State != nil {
			g.state[p.Name] = p.State(g)
		}
	}
	return g
}

// State returns the state provider's Provider.State made for g. Call it
// from the provider's Generate or Redeliver, which run with g locked.
func (g *Generator) State(provider string) any {
	s, ok := g.state[provider]
	if !ok {
		// A provider registered after g was made.
		if p := lookup(provider); p != nil && p.State != nil {
			s = p.State(g)
			g.state[provider] = s
		}
	}
	return s
}

// Options returns the options g was made with, defaults applied.
func (g *Generator) Options() GenOptions { return g.opts }

// Generate builds one event of the given provider and type.
func (g *Generator) Generate(provider, eventType string) (*Event, error) {
	p := lookup(provider)
	if p == nil {
		return nil, fmt.Errorf("sim: provider %q is not simulated (want one of %s)", provider, strings.Join(Providers(), ", "))
	}
	if !slices.Contains(EventTypes[provider], eventType) {
		return nil, fmt.Errorf("unknown %s event type %q", provider, eventType)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ev := p.Generate(g, eventType)
	ev.Provider, ev.Type = provider, eventType
	if ev.Items == 0 {
		ev.Items = 1
	}
	return ev, nil
}

// Redelivery returns the same logical event as e (same provider id, same
// loyalty data) in a different encoding: another key order and layout, and
// whatever else the provider changes (Provider.Redeliver). A gateway must
// answer it as a duplicate.
func (g *Generator) Redelivery(e *Event) *Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := lookup(e.Provider); p != nil && p.Redeliver != nil {
		return p.Redeliver(g, e)
	}
	return g.reencode(e, e.document())
}

// reencode returns e with its body doc, encoded with another key order and
// layout.
func (g *Generator) reencode(e *Event, doc any) *Event {
	return &Event{Provider: e.Provider, Type: e.Type, Body: marshalShuffled(doc, g.rng), ProviderID: e.ProviderID, Items: e.Items, doc: doc}
}

// document returns a copy of e's body as a document, free to change.
func (e *Event) document() any {
	if e.doc != nil {
		return clone(e.doc)
	}
	doc, err := decodeOrdered(e.Body)
	if err != nil {
		// Bodies are generated as JSON; one that is not has no other
		// encoding to offer.
		panic(fmt.Sprintf("sim: %s body is not JSON: %v", e.Provider, err))
	}
	return doc
}

// decodeOrdered decodes a JSON document into obj, []any and scalars,
// keeping object members in order and numbers as written.
func decodeOrdered(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var value func() (any, error)
	value = func() (any, error) {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok {
		case json.Delim('{'):
			o := obj{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := value()
				if err != nil {
					return nil, err
				}
				o = append(o, kv{k.(string), v})
			}
			_, err = dec.Token()
			return o, err
		case json.Delim('['):
			a := []any{}
			for dec.More() {
				v, err := value()
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err = dec.Token()
			return a, err
		}
		return tok, nil
	}
	v, err := value()
	if err == nil && dec.More() {
		err = errors.New("data after the document")
	}
	return v, err
}

func (g *Generator) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

// recent returns a time within the last minute, to the second, as providers
// write them.
func (g *Generator) recent() time.Time {
	return g.opts.Now().Add(-time.Duration(g.rng.IntN(60)) * time.Second).Truncate(time.Second)
}

// money formats cents the way both the subscription and payment providers
// do: a decimal string with two places.
func money(cents int) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func (g *Generator) cents(lo, hi int) int { return lo + g.rng.IntN(hi-lo+1) }

func newUUID() string { return uuid.NewString() }

func pick[T any](r *mrand.Rand, s []T) T { return s[r.IntN(len(s))] }

// lowerAlnum is the alphabet of the payment gateway's object keys
// ("1nftvzx7xtcggm3").
const lowerAlnum = "0123456789abcdefghijklmnopqrstuvwxyz"

func randString(r *mrand.Rand, alphabet string, n int) string {
	var sb strings.Builder
	sb.Grow(n)
	for range n {
		sb.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}
