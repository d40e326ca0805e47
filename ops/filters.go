package ops

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// FilterRequest selects events in a replay or purge request; empty fields
// match all. Times are RFC 3339.
type FilterRequest struct {
	// Source is a route's CloudEvents source, e.g. "/usaepay".
	Source string `json:"source,omitempty"`
	// Provider is one of Providers.
	Provider string `json:"provider,omitempty"`
	// Type is the canonical event type, prefix included.
	Type string `json:"type,omitempty"`
	// Subject is the canonical event's subject, exactly: the customer,
	// order or transaction the event is about (which provider field it
	// comes from depends on the provider).
	Subject string `json:"subject,omitempty"`
	// ID selects one event by its id; it needs Source.
	ID string `json:"id,omitempty"`
	// Destination selects events with a delivery to this destination;
	// with Status, that delivery's status rather than the event's.
	Destination string `json:"destination,omitempty"`
	// Status is one of Statuses: reserved, held, pending, retrying,
	// delivered, dead, skipped, released or unmatched.
	Status string `json:"status,omitempty"`
	// From and To bound the receive time: From <= received_at < To.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Limit caps how many events are replayed or purged; 0 means all that
	// match.
	Limit int `json:"limit,omitempty"`
}

// Filter checks fr and turns it into a store filter (without its Limit).
func (fr *FilterRequest) Filter() (store.Filter, error) {
	f := store.Filter{Source: fr.Source, Provider: fr.Provider, Type: fr.Type, Subject: fr.Subject, ID: fr.ID, Destination: fr.Destination}
	if fr.ID != "" && fr.Source == "" {
		return f, Mark(ErrInvalid, fmt.Errorf("id %q: an id selects an event only with its source", fr.ID))
	}
	if fr.Status != "" {
		s := store.Status(fr.Status)
		if !IsKnownStatus(s) {
			return f, Mark(ErrInvalid, fmt.Errorf("status %q: want one of %s", fr.Status, statusList()))
		}
		f.Status = s
	}
	var err error
	if f.From, err = parseTime("from", fr.From); err != nil {
		return f, err
	}
	if f.To, err = parseTime("to", fr.To); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, Mark(ErrInvalid, fmt.Errorf("from %s is not before to %s", fr.From, fr.To))
	}
	return f, nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, Mark(ErrInvalid, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, v))
	}
	return t, nil
}

// statusList is Statuses as a reader writes them.
func statusList() string {
	names := make([]string, len(Statuses))
	for i, s := range Statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// QueryFilter reads a listing filter from query parameters: source,
// provider, type, subject, id, destination, status, from, to, cursor and
// limit.
func QueryFilter(q url.Values) (store.Filter, error) {
	fr := FilterRequest{
		Source:      q.Get("source"),
		Provider:    q.Get("provider"),
		Type:        q.Get("type"),
		Subject:     q.Get("subject"),
		ID:          q.Get("id"),
		Destination: q.Get("destination"),
		Status:      q.Get("status"),
		From:        q.Get("from"),
		To:          q.Get("to"),
	}
	f, err := fr.Filter()
	if err != nil {
		return f, err
	}
	if c := q.Get("cursor"); c != "" {
		// Cursors are base64url; rejecting anything else here gives a
		// clear 400 without depending on the store's error text.
		if _, err := base64.RawURLEncoding.DecodeString(c); err != nil {
			return f, Mark(ErrInvalid, fmt.Errorf("cursor %q is not a cursor from a previous listing", c))
		}
		f.Cursor = c
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return f, Mark(ErrInvalid, fmt.Errorf("limit %q: want a number from 1 to %d", l, store.MaxListLimit))
		}
		f.Limit = n
	}
	return f, nil
}

// ActionFilter checks the filter of a replay or purge and returns it with
// its limit (0: all). An empty filter selects every event, so it is refused
// unless all is set: a request that forgot its filter must not replay or
// delete everything by accident.
func ActionFilter(fr *FilterRequest, all bool) (store.Filter, int, error) {
	if fr == nil {
		fr = &FilterRequest{}
	}
	f, err := fr.Filter()
	if err != nil {
		return f, 0, err
	}
	if fr.Limit < 0 {
		return f, 0, Mark(ErrInvalid, fmt.Errorf("filter limit %d: want 0 (no limit) or more", fr.Limit))
	}
	if f == (store.Filter{}) && !all {
		return f, 0, Mark(ErrInvalid, errors.New(`empty filter: it would select every stored event; set "all": true to mean that`))
	}
	return f, fr.Limit, nil
}

// Key names one stored event and the deliveries an operation acts on.
type Key struct {
	Source, ID string
	// Deliveries are the destinations of the deliveries selected.
	Deliveries []string
}

// Matching returns the keys of the events matching f, newest first, at most
// limit of them (0: all), walking every page of the listing, each with the
// deliveries a replay by f takes (see Selected).
func Matching(ctx context.Context, t Target, f store.Filter, limit int) ([]Key, error) {
	var keys []Key
	page := f
	page.Cursor = ""
	page.Limit = store.MaxListLimit
	for limit <= 0 || len(keys) < limit {
		recs, cursor, err := t.Store.List(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("listing events in %s: %w", t.Name, err)
		}
		for _, rec := range recs {
			if limit > 0 && len(keys) == limit {
				break
			}
			keys = append(keys, Key{rec.Source, rec.ID, Selected(rec, f.Destination, f.Status, "")})
		}
		if cursor == "" {
			break
		}
		page.Cursor = cursor
	}
	return keys, nil
}

// Selected returns the destinations of the deliveries of rec that a replay
// acts on: the one named (of), else the one of the filter's destination,
// else those in the filter's status, else every delivery that is not
// delivered or skipped, and when every one is, all of them (replaying a
// delivered event sends it again, as an operator asking for it wants). A
// held or reserved delivery (a sync route's, in flight) is selected only
// when there is no other, so that the replay says why it cannot be made.
// An unmatched event has none.
func Selected(rec *store.Record, destination string, status store.Status, of string) []string {
	switch {
	case of != "":
		return []string{of}
	case destination != "":
		if rec.Delivery(destination) == nil {
			return nil
		}
		return []string{destination}
	}
	var open, settled, busy []string
	for _, d := range rec.Deliveries {
		switch {
		case status != "" && d.Status == status:
			open = append(open, d.Destination)
		case status != "":
		case d.Status == store.StatusHeld || d.Status == store.StatusReserved:
			busy = append(busy, d.Destination)
		case d.Status == store.StatusDelivered || d.Status == store.StatusSkipped:
			settled = append(settled, d.Destination)
		default:
			open = append(open, d.Destination)
		}
	}
	switch {
	case len(open) > 0 || status != "":
		return open
	case len(settled) > 0:
		return settled
	}
	return busy // so that the replay says it cannot be made yet
}
