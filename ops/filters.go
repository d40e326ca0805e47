package ops

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
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
	// Status is reserved, pending, retrying, delivered, dead or released.
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
	f := store.Filter{Source: fr.Source, Provider: fr.Provider, Type: fr.Type, Subject: fr.Subject, ID: fr.ID}
	if fr.ID != "" && fr.Source == "" {
		return f, Mark(ErrInvalid, fmt.Errorf("id %q: an id selects an event only with its source", fr.ID))
	}
	if fr.Status != "" {
		s := store.Status(fr.Status)
		if !IsKnownStatus(s) {
			return f, Mark(ErrInvalid, fmt.Errorf("status %q: want one of reserved, pending, retrying, delivered, dead, released", fr.Status))
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

// QueryFilter reads a listing filter from query parameters: source,
// provider, type, subject, id, status, from, to, cursor and limit.
func QueryFilter(q url.Values) (store.Filter, error) {
	fr := FilterRequest{
		Source:   q.Get("source"),
		Provider: q.Get("provider"),
		Type:     q.Get("type"),
		Subject:  q.Get("subject"),
		ID:       q.Get("id"),
		Status:   q.Get("status"),
		From:     q.Get("from"),
		To:       q.Get("to"),
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

// Key names one stored event, and the destination it is bound to.
type Key struct{ Source, ID, Destination string }

// Matching returns the keys of the events matching f, newest first, at most
// limit of them (0: all), walking every page of the listing.
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
			// One key per delivery the filter selects: with a destination
			// that one, with a status those in it, otherwise every one.
			for _, d := range rec.Deliveries {
				if (f.Destination == "" || d.Destination == f.Destination) && (f.Status == "" || d.Status == f.Status) {
					keys = append(keys, Key{rec.Source, rec.ID, d.Destination})
				}
			}
		}
		if cursor == "" {
			break
		}
		page.Cursor = cursor
	}
	return keys, nil
}
