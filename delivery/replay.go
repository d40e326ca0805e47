package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// ErrReserved is returned when replaying an event whose synchronous
// delivery is still in flight: its outcome is not known yet, and a replay
// would race with it.
var ErrReserved = errors.New("event is being delivered synchronously")

// ReplayResult is what a replay sent, or on a dry run would send.
type ReplayResult struct {
	// Source and ID name the event.
	Source string `json:"source"`
	ID     string `json:"id"`
	// Destination names the destination the replay went to (or on a dry
	// run would go to).
	Destination string `json:"destination,omitempty"`
	// Redirected is true when that is not the event's own destination:
	// the attempt is kept as history, and the event's status is left
	// alone, since its own destination has still not had it.
	Redirected bool `json:"redirected,omitempty"`
	// DryRun is true when nothing was sent.
	DryRun bool `json:"dry_run,omitempty"`
	// URL is the upstream's scheme and host (the path is left out because
	// it may hold a token): the one the replay was answered by, or on a dry
	// run the one it would be sent to first.
	URL string `json:"url,omitempty"`
	// Header is the request's header with its webhook-signature masked
	// (see MaskSignature): a signature is not the secret, but it is valid
	// for the whole of the backend's tolerance window, so whoever reads a
	// replay result could have the backend accept the event from them.
	Header http.Header `json:"header,omitempty"`
	// Body is the canonical event, exactly as sent.
	Body json.RawMessage `json:"body,omitempty"`
	// Attempt is the recorded attempt; nil on a dry run or when the event
	// could not be replayed.
	Attempt *store.Attempt `json:"attempt,omitempty"`
	// Status is the replayed delivery's status after the replay.
	Status store.Status `json:"status,omitempty"`
	// Error says why the event could not be replayed (bulk replay only;
	// Replay returns it as its error).
	Error string `json:"error,omitempty"`
}

// ErrAmbiguousDelivery is returned by Replay when the operator did not say
// which of an event's deliveries is replayed and the engine cannot tell:
// the event has several, none of them to the engine's destination.
var ErrAmbiguousDelivery = errors.New("event has several deliveries: name the one to replay")

// Replay sends one delivery of a stored event again, now, to this engine's
// destination, whatever its status (except a reserved or held one, whose
// sync delivery is in flight or failed) and whatever dedup says, and waits
// for the backend's answer: an operator replaying an event wants to see
// what happened, and a synchronous replay cannot pile up behind the retry
// queue.
//
// of names the delivery replayed, by its destination; empty means the
// event's delivery to this engine's destination, or when it has none its
// only delivery (ErrAmbiguousDelivery when it has several). The body is
// that delivery's (an ordered one carries its sequence and partitionkey).
//
// The request carries Webhook-Replay: true and the next Webhook-Attempt
// number of the delivery. It is recorded on the delivery as an Attempt
// with Replay set, and its Replays is incremented. A 2xx from the
// delivery's own destination makes it delivered (a dead delivery leaves
// the dead list; a parked lane moves on); any other outcome leaves its
// status and schedule alone, so a failed replay of a dead delivery does
// not restart its retries. A delivery bound to another destination is sent
// here all the same (the operator chose this destination): the attempt
// names it (Attempt.Destination) and leaves the delivery's status to its
// own destination. A replay does not count toward MaxAttempts. With dryRun
// nothing is sent or recorded; the result shows the request that would be
// sent. Either way the result's signature is masked: a dry run's would be
// a fresh one, ready to use.
//
// Replay works whether or not the engine is started.
func (e *Engine) Replay(ctx context.Context, source, id, of string, dryRun bool) (*ReplayResult, error) {
	rec, err := e.cfg.Store.Get(ctx, source, id)
	if err != nil {
		return nil, fmt.Errorf("replaying %s %s: %w", source, id, err)
	}
	d, err := e.replayed(rec, of)
	if err != nil {
		return nil, fmt.Errorf("replaying %s %s: %w", source, id, err)
	}
	if rec.Status == store.StatusReserved || d.Status == store.StatusReserved || d.Status == store.StatusHeld {
		return nil, fmt.Errorf("replaying %s %s: %w", source, id, ErrReserved)
	}
	number := len(d.Attempts) + 1
	redirected := d.Destination != e.cfg.Destination
	body := Body(rec, d)
	out := &ReplayResult{Source: source, ID: id, Destination: e.cfg.Destination, Redirected: redirected,
		DryRun: dryRun, Body: body, Status: d.Status}
	if dryRun {
		next := int(e.rr.Load()) % len(e.upstreams)
		out.URL = redactURL(e.upstreams[next].String())
		out.Header = MaskSignature(e.cfg.Headers.Build(withBody(rec, body), number, true, e.cfg.Now()))
		return out, nil
	}

	res := e.send(ctx, rec, d, number, true)
	defer res.span.end()
	e.observe(source, res)
	if redirected {
		res.Attempt.Destination = e.cfg.Destination
	}
	out.URL, out.Header, out.Attempt = res.URL, MaskSignature(res.Header), &res.Attempt
	delivered := !redirected && res.Attempt.Status >= 200 && res.Attempt.Status <= 299

	// Record even if the caller has gone: the backend has seen the request.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	updated, err := e.cfg.Store.RecordReplay(rctx, source, id, d.Destination, res.Attempt, delivered)
	if err != nil {
		return out, fmt.Errorf("replaying %s %s: sent (status %d) but not recorded: %w", source, id, res.Attempt.Status, err)
	}
	out.Status = updated.Status
	if ud := updated.Delivery(d.Destination); ud != nil {
		out.Status = ud.Status
	}
	if delivered && d.Lane != "" {
		e.Notify() // the lane's next delivery is due now
	}
	return out, nil
}

// replayed is the delivery of rec a replay of "of" takes (see Replay).
func (e *Engine) replayed(rec *store.Record, of string) (*store.Delivery, error) {
	if of != "" {
		if d := rec.Delivery(of); d != nil {
			return d, nil
		}
		return nil, fmt.Errorf("destination %q: %w", of, store.ErrNoDelivery)
	}
	if d := rec.Delivery(e.cfg.Destination); d != nil {
		return d, nil
	}
	switch len(rec.Deliveries) {
	case 0:
		return nil, fmt.Errorf("event is %s: %w", rec.Status, store.ErrNoDelivery)
	case 1:
		return &rec.Deliveries[0], nil
	}
	return nil, ErrAmbiguousDelivery
}

// maskedSignatureChars is how much of each signature MaskSignature keeps:
// enough to match a result with a backend's log, far too little to forge
// anything from.
const maskedSignatureChars = 6

// MaskSignature returns h with its webhook-signature masked: each
// space-separated signature keeps its version and first characters only
// ("v1,K7fQ2x…"). h itself is left alone: a header with a signature is
// copied, one without is returned as it is.
func MaskSignature(h http.Header) http.Header {
	values := h.Values(HeaderWebhookSignature)
	if len(values) == 0 {
		return h
	}
	out := h.Clone()
	masked := make([]string, len(values))
	for i, v := range values {
		sigs := strings.Fields(v)
		for j, sig := range sigs {
			version, mac, ok := strings.Cut(sig, ",")
			if !ok {
				version, mac = "", sig
			} else {
				version += ","
			}
			sigs[j] = version + mac[:min(len(mac), maskedSignatureChars)] + "…"
		}
		masked[i] = strings.Join(sigs, " ")
	}
	out[http.CanonicalHeaderKey(HeaderWebhookSignature)] = masked
	return out
}
