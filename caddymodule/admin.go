package caddymodule

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// Interface guard.
var _ caddy.AdminRouter = (*AdminAPI)(nil)

// Admin API limits.
const (
	// maxAdminBody bounds a replay or purge request: they carry a filter,
	// never events.
	maxAdminBody = 1 << 20
	// replayConcurrency bounds the replays of one bulk replay, so an
	// operator's "replay everything" does not flood the backend.
	replayConcurrency = 8
)

// AdminAPI serves the gateway's endpoints on Caddy's admin API, under
// /webhooks/: list, show, replay, count and purge stored events. It needs
// no configuration: Caddy loads every admin.api.* module. It reads the
// stores and delivery engines of the loaded config at request time, since
// admin modules are provisioned before the apps.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_gateway",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the /webhooks/ endpoints.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/webhooks/events", Handler: caddy.AdminHandlerFunc(a.handleList)},
		{Pattern: "/webhooks/event", Handler: caddy.AdminHandlerFunc(a.handleShow)},
		{Pattern: "/webhooks/replay", Handler: caddy.AdminHandlerFunc(a.handleReplay)},
		{Pattern: "/webhooks/counts", Handler: caddy.AdminHandlerFunc(a.handleCounts)},
		{Pattern: "/webhooks/purge", Handler: caddy.AdminHandlerFunc(a.handlePurge)},
	}
}

// EventSummary is one line of a listing: enough to pick an event to show
// or replay, without its body.
type EventSummary struct {
	// Source and ID are the event's key, what show and replay take.
	Source   string `json:"source"`
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// Type is the canonical event type, prefix included.
	Type       string       `json:"type"`
	Status     store.Status `json:"status"`
	ReceivedAt time.Time    `json:"received_at"`
	// Attempts counts delivery attempts, replays included.
	Attempts int `json:"attempts"`
	Replays  int `json:"replays,omitempty"`
	// NextAttemptAt is set while a retry is scheduled.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// LastStatus and LastError are from the latest attempt: what an
	// operator looks at first for a dead or retrying event.
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// DeadReason says why a dead event gets no further attempt (gone,
	// attempts_exhausted, max_age).
	DeadReason store.DeadReason `json:"dead_reason,omitempty"`
}

// ListResponse is the answer of GET /webhooks/events.
type ListResponse struct {
	// Store is the name of the store listed (a badger store's directory).
	Store string `json:"store"`
	// Events are newest first.
	Events []EventSummary `json:"events"`
	// NextCursor continues the listing (cursor=...); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// EventView is the answer of GET /webhooks/event: the stored record (with
// the canonical event, the provider's headers minus secrets, and the
// attempts) and the raw request body it came in.
type EventView struct {
	*store.Record
	// RawBody is the provider's request body when it is UTF-8 text (always,
	// for the JSON providers send); for a batch it is the whole batch.
	RawBody string `json:"raw_body,omitempty"`
	// RawBodyBase64 carries a body that is not valid UTF-8.
	RawBodyBase64 string `json:"raw_body_base64,omitempty"`
}

// CountsResponse is the answer of GET /webhooks/counts.
type CountsResponse struct {
	// Store is the name of the store counted.
	Store string `json:"store"`
	// Counts has every status, zero or not.
	Counts map[store.Status]int `json:"counts"`
	Total  int                  `json:"total"`
}

// FilterRequest selects events in a replay or purge request; empty fields
// match all. Times are RFC 3339.
type FilterRequest struct {
	// Source is a route's CloudEvents source, e.g. "/usaepay".
	Source string `json:"source,omitempty"`
	// Provider is openloyalty, sublytics or usaepay.
	Provider string `json:"provider,omitempty"`
	// Type is the canonical event type, prefix included.
	Type string `json:"type,omitempty"`
	// Status is reserved, pending, retrying, delivered or dead.
	Status string `json:"status,omitempty"`
	// From and To bound the receive time: From <= received_at < To.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Limit caps how many events are replayed or purged; 0 means all that
	// match.
	Limit int `json:"limit,omitempty"`
}

// ReplayRequest is the body of POST /webhooks/replay: either Source and ID,
// or Filter (or All for every event).
type ReplayRequest struct {
	// Store names the store (a badger store by its directory); needed only
	// when several are loaded.
	Store string `json:"store,omitempty"`
	// Source and ID name one event to replay.
	Source string `json:"source,omitempty"`
	ID     string `json:"id,omitempty"`
	// Filter selects the events to replay instead.
	Filter *FilterRequest `json:"filter,omitempty"`
	// All allows an empty filter, which replays every stored event: a
	// request that forgot its filter must not do that by accident.
	All bool `json:"all,omitempty"`
	// DryRun sends nothing and returns the requests that would be sent.
	DryRun bool `json:"dry_run,omitempty"`
}

// BulkReplayResponse is the answer of a replay by filter.
type BulkReplayResponse struct {
	// Store is the name of the store the events were read from.
	Store string `json:"store"`
	// DryRun is true when nothing was sent.
	DryRun bool `json:"dry_run,omitempty"`
	// Matched is how many stored events matched the filter.
	Matched int `json:"matched"`
	// Delivered counts replays the backend answered with a 2xx; on a dry
	// run it counts the events that would be sent.
	Delivered int `json:"delivered"`
	// Failed counts replays that got no 2xx or could not be made.
	Failed int `json:"failed"`
	// Skipped counts events whose source has no async route to replay
	// them with.
	Skipped int `json:"skipped"`
	// Results follow the listing order (newest first), one per matched
	// event; Error says why one was skipped or failed.
	Results []*delivery.ReplayResult `json:"results"`
}

// PurgeRequest is the body of POST /webhooks/purge.
type PurgeRequest struct {
	// Store names the store (a badger store by its directory); needed only
	// when several are loaded.
	Store string `json:"store,omitempty"`
	// Filter selects the events to delete; its Limit caps how many.
	Filter *FilterRequest `json:"filter,omitempty"`
	// All allows an empty filter, which deletes every stored event.
	All bool `json:"all,omitempty"`
}

// PurgeResponse is the answer of POST /webhooks/purge.
type PurgeResponse struct {
	// Store is the name of the store purged.
	Store string `json:"store"`
	// Purged is how many events were deleted.
	Purged int `json:"purged"`
}

// handleList serves GET /webhooks/events.
func (a *AdminAPI) handleList(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	dir, ls, err := lookupStore(q.Get("store"))
	if err != nil {
		return err
	}
	f, err := filterFromQuery(q)
	if err != nil {
		return badRequest(err)
	}
	recs, next, err := ls.db.List(r.Context(), f)
	if err != nil {
		// A cursor the store cannot decode is the caller's mistake,
		// anything else is ours.
		if errors.Is(err, store.ErrInvalidCursor) {
			return badRequest(err)
		}
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("listing events in %s: %w", dir, err)}
	}
	out := ListResponse{Store: dir, Events: make([]EventSummary, 0, len(recs)), NextCursor: next}
	for _, rec := range recs {
		out.Events = append(out.Events, summarize(rec))
	}
	return writeJSON(w, http.StatusOK, out)
}

func summarize(rec *store.Record) EventSummary {
	s := EventSummary{
		Source:     rec.Source,
		ID:         rec.ID,
		Provider:   rec.Provider,
		Type:       rec.Type,
		Status:     rec.Status,
		ReceivedAt: rec.ReceivedAt,
		Attempts:   len(rec.Attempts),
		Replays:    rec.Replays,
		DeadReason: rec.DeadReason,
	}
	if !rec.NextAttemptAt.IsZero() && (rec.Status == store.StatusPending || rec.Status == store.StatusRetrying) {
		t := rec.NextAttemptAt
		s.NextAttemptAt = &t
	}
	if n := len(rec.Attempts); n > 0 {
		s.LastStatus = rec.Attempts[n-1].Status
		s.LastError = rec.Attempts[n-1].Error
	}
	return s
}

// handleShow serves GET /webhooks/event?source=...&id=...
func (a *AdminAPI) handleShow(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	source, id := q.Get("source"), q.Get("id")
	if source == "" || id == "" {
		return badRequest(errors.New("both source and id are required, e.g. ?source=/usaepay&id=<event id>"))
	}
	dir, ls, err := lookupStore(q.Get("store"))
	if err != nil {
		return err
	}
	rec, err := ls.db.Get(r.Context(), source, id)
	if err != nil {
		return storeError(err, dir, source, id)
	}
	view := EventView{Record: rec}
	body, err := ls.db.RawBody(r.Context(), source, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The record can outlive nothing else, but a concurrent purge can
		// remove both between the two reads: show what was found.
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("reading raw body of %s %s: %w", source, id, err)}
	case utf8.Valid(body):
		view.RawBody = string(body)
	default:
		view.RawBodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return writeJSON(w, http.StatusOK, view)
}

// handleCounts serves GET /webhooks/counts. It counts exactly (a scan of
// the listing index) rather than using the metrics' cached counts: an
// operator asking wants the current numbers.
func (a *AdminAPI) handleCounts(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	dir, ls, err := lookupStore(r.URL.Query().Get("store"))
	if err != nil {
		return err
	}
	counts, err := ls.db.Counts(r.Context())
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("counting events in %s: %w", dir, err)}
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return writeJSON(w, http.StatusOK, CountsResponse{Store: dir, Counts: counts, Total: total})
}

// handleReplay serves POST /webhooks/replay.
func (a *AdminAPI) handleReplay(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	var req ReplayRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	byID := req.Source != "" || req.ID != ""
	switch {
	case byID && (req.Filter != nil || req.All):
		return badRequest(errors.New("give either source and id, or a filter, not both"))
	case byID && (req.Source == "" || req.ID == ""):
		return badRequest(errors.New("replay by id needs both source and id"))
	case !byID && req.Filter == nil && !req.All:
		return badRequest(errors.New(`nothing to replay: give "source" and "id", or a "filter" (with "all": true to replay every event)`))
	}
	dir, ls, err := lookupStore(req.Store)
	if err != nil {
		return err
	}
	if byID {
		return a.replayOne(w, r.Context(), dir, ls, req.Source, req.ID, req.DryRun)
	}
	f, limit, err := filterFromRequest(req.Filter, req.All)
	if err != nil {
		return badRequest(err)
	}
	if f.Source != "" {
		// Fail the whole request up front rather than skip every event.
		if _, err := live.engine(dir, f.Source); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
		}
	}
	out, err := replayMatching(r.Context(), dir, ls.db, f, limit, req.DryRun)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *AdminAPI) replayOne(w http.ResponseWriter, ctx context.Context, dir string, ls *liveStore, source, id string, dryRun bool) error {
	if _, err := ls.db.Get(ctx, source, id); err != nil {
		return storeError(err, dir, source, id)
	}
	engine, err := live.engine(dir, source)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("replaying %s %s: %w", source, id, err)}
	}
	res, err := engine.Replay(ctx, source, id, dryRun)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return storeError(err, dir, source, id) // purged meanwhile
	case errors.Is(err, delivery.ErrReserved), errors.Is(err, delivery.ErrNotServed):
		return caddy.APIError{HTTPStatus: http.StatusConflict, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return writeJSON(w, http.StatusOK, res)
}

// replayMatching replays every event matching f (at most limit, 0: all)
// through the engine of its source. It collects the keys before replaying,
// because a replay changes statuses and would shift a status-filtered
// listing under its own cursor.
func replayMatching(ctx context.Context, dir string, db store.Store, f store.Filter, limit int, dryRun bool) (*BulkReplayResponse, error) {
	type key struct{ source, id string }
	var keys []key
	page := f
	page.Limit = store.MaxListLimit
	for limit <= 0 || len(keys) < limit {
		recs, cursor, err := db.List(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("listing events to replay in %s: %w", dir, err)
		}
		for _, rec := range recs {
			if limit > 0 && len(keys) == limit {
				break
			}
			keys = append(keys, key{rec.Source, rec.ID})
		}
		if cursor == "" {
			break
		}
		page.Cursor = cursor
	}

	out := &BulkReplayResponse{Store: dir, DryRun: dryRun, Matched: len(keys), Results: make([]*delivery.ReplayResult, len(keys))}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, replayConcurrency)
	)
	for i, k := range keys {
		engine, err := live.engine(dir, k.source)
		if err != nil {
			out.Results[i] = &delivery.ReplayResult{Source: k.source, ID: k.id, DryRun: dryRun, Error: err.Error()}
			out.Skipped++
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, fmt.Errorf("bulk replay interrupted after %d of %d events: %w", i, len(keys), ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := engine.Replay(ctx, k.source, k.id, dryRun)
			if res == nil {
				res = &delivery.ReplayResult{Source: k.source, ID: k.id, DryRun: dryRun}
			}
			if err != nil {
				res.Error = err.Error()
			}
			out.Results[i] = res
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				out.Failed++
			case dryRun, res.Attempt != nil && res.Attempt.Status >= 200 && res.Attempt.Status <= 299:
				out.Delivered++
			default:
				out.Failed++
			}
		})
	}
	wg.Wait()
	return out, nil
}

// handlePurge serves POST /webhooks/purge.
func (a *AdminAPI) handlePurge(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	var req PurgeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	f, limit, err := filterFromRequest(req.Filter, req.All)
	if err != nil {
		return badRequest(err)
	}
	dir, ls, err := lookupStore(req.Store)
	if err != nil {
		return err
	}
	f.Limit = limit
	n, err := ls.db.Purge(r.Context(), f)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("purged %d events from %s, then: %w", n, dir, err)}
	}
	return writeJSON(w, http.StatusOK, PurgeResponse{Store: dir, Purged: n})
}

// filterFromQuery reads a listing filter from query parameters.
func filterFromQuery(q url.Values) (store.Filter, error) {
	fr := FilterRequest{
		Source:   q.Get("source"),
		Provider: q.Get("provider"),
		Type:     q.Get("type"),
		Status:   q.Get("status"),
		From:     q.Get("from"),
		To:       q.Get("to"),
	}
	f, err := fr.toFilter()
	if err != nil {
		return f, err
	}
	if c := q.Get("cursor"); c != "" {
		// Cursors are base64url; rejecting anything else here gives a
		// clear 400 without depending on the store's error text.
		if _, err := base64.RawURLEncoding.DecodeString(c); err != nil {
			return f, fmt.Errorf("cursor %q is not a cursor from a previous listing", c)
		}
		f.Cursor = c
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxListLimit {
			return f, fmt.Errorf("limit %q: want a number from 1 to %d", l, store.MaxListLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// filterFromRequest checks a replay or purge filter; an empty one is
// refused unless all is set, since it selects every event.
func filterFromRequest(fr *FilterRequest, all bool) (store.Filter, int, error) {
	if fr == nil {
		fr = &FilterRequest{}
	}
	f, err := fr.toFilter()
	if err != nil {
		return f, 0, err
	}
	if fr.Limit < 0 {
		return f, 0, fmt.Errorf("filter limit %d: want 0 (no limit) or more", fr.Limit)
	}
	if f == (store.Filter{}) && !all {
		return f, 0, errors.New(`empty filter: it would select every stored event; set "all": true to mean that`)
	}
	return f, fr.Limit, nil
}

var knownStatuses = []store.Status{store.StatusReserved, store.StatusPending, store.StatusRetrying, store.StatusDelivered, store.StatusDead}

func (fr *FilterRequest) toFilter() (store.Filter, error) {
	f := store.Filter{Source: fr.Source, Provider: fr.Provider, Type: fr.Type}
	if fr.Status != "" {
		s := store.Status(fr.Status)
		if !isKnownStatus(s) {
			return f, fmt.Errorf("status %q: want one of reserved, pending, retrying, delivered, dead", fr.Status)
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
		return f, fmt.Errorf("from %s is not before to %s", fr.From, fr.To)
	}
	return f, nil
}

func isKnownStatus(s store.Status) bool {
	for _, k := range knownStatuses {
		if s == k {
			return true
		}
	}
	return false
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, v)
	}
	return t, nil
}

// lookupStore maps registry errors to API errors.
func lookupStore(dir string) (string, *liveStore, error) {
	d, ls, err := live.store(dir)
	switch {
	case err == nil:
		return d, ls, nil
	case errors.Is(err, errNoStore):
		return "", nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("%w: no webhook_gateway handler in the running config", err)}
	default:
		return "", nil, badRequest(err)
	}
}

func storeError(err error, dir, source, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no event %s %s in %s", source, id, dir)}
	}
	return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("reading event %s %s from %s: %w", source, id, dir, err)}
}

func badRequest(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
}

func allow(w http.ResponseWriter, r *http.Request, method string) error {
	if r.Method == method {
		return nil
	}
	w.Header().Set("Allow", method)
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed; use %s", r.Method, method)}
}

// decodeBody reads a JSON request strictly: a misspelled field (say
// "dryrun") must not silently turn a dry run into a real replay.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest(errors.New("empty request body: send a JSON object"))
		}
		return badRequest(fmt.Errorf("decoding request body: %w", err))
	}
	if dec.More() {
		return badRequest(errors.New("request body holds more than one JSON value"))
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
