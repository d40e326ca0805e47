package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// Interface guard.
var _ caddy.AdminRouter = (*AdminAPI)(nil)

// maxAdminBody bounds a replay or purge request: they carry a filter,
// never events.
const maxAdminBody = 1 << 20

// AdminAPI serves the gateway's endpoints on Caddy's admin API, under
// /webhooks/: list, show, replay, count and purge stored events, skip a
// dead delivery, list the destinations and a destination's parked lanes,
// and pause or resume a destination in this gateway. It needs
// no configuration: Caddy loads every admin.api.* module. It reads the
// stores and delivery engines of the loaded config at request time, since
// admin modules are provisioned before the apps. Its answers are the
// results of package ops, encoded as JSON.
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
		{Pattern: "/webhooks/skip", Handler: caddy.AdminHandlerFunc(a.handleSkip)},
		{Pattern: "/webhooks/destinations", Handler: caddy.AdminHandlerFunc(a.handleDestinations)},
		{Pattern: "/webhooks/lanes", Handler: caddy.AdminHandlerFunc(a.handleLanes)},
		{Pattern: "/webhooks/pause", Handler: caddy.AdminHandlerFunc(a.handlePause(true))},
		{Pattern: "/webhooks/resume", Handler: caddy.AdminHandlerFunc(a.handlePause(false))},
	}
}

// ReplayRequest is the body of POST /webhooks/replay: either Source and ID,
// or Filter (or All for every event).
type ReplayRequest struct {
	// Store is the name of the store (StoreEngine.StoreName: a badger
	// store's directory, a postgres store's database); needed only when
	// several are loaded.
	Store string `json:"store,omitempty"`
	// Source and ID name one event to replay: each of its deliveries
	// that is not delivered or skipped (every one when all are), or the
	// one Delivery names.
	Source string `json:"source,omitempty"`
	ID     string `json:"id,omitempty"`
	// Delivery names the delivery of the event to replay, by its
	// destination (with Source and ID; a filter says it with its
	// destination).
	Delivery string `json:"delivery,omitempty"`
	// Filter selects the events to replay instead.
	Filter *ops.FilterRequest `json:"filter,omitempty"`
	// All allows an empty filter, which replays every stored event: a
	// request that forgot its filter must not do that by accident.
	All bool `json:"all,omitempty"`
	// Destination names the destination to send the events to: a
	// destination of a loaded async route, once per event. Default: each
	// delivery's own destination, the one it was bound to when the event
	// was stored. A delivery sent to another destination keeps its status
	// (the attempt is history, naming where it went).
	Destination string `json:"destination,omitempty"`
	// DryRun sends nothing and returns the requests that would be sent.
	DryRun bool `json:"dry_run,omitempty"`
}

// PurgeRequest is the body of POST /webhooks/purge.
type PurgeRequest struct {
	// Store is the name of the store (StoreEngine.StoreName: a badger
	// store's directory, a postgres store's database); needed only when
	// several are loaded.
	Store string `json:"store,omitempty"`
	// Filter selects the events to delete; its Limit caps how many.
	Filter *ops.FilterRequest `json:"filter,omitempty"`
	// All allows an empty filter, which deletes every stored event.
	All bool `json:"all,omitempty"`
}

// handleList serves GET /webhooks/events.
func (a *AdminAPI) handleList(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	t, err := live.target(q.Get("store"))
	if err != nil {
		return apiError(err)
	}
	f, err := ops.QueryFilter(q)
	if err != nil {
		return apiError(err)
	}
	out, err := ops.List(r.Context(), t, f)
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// handleShow serves GET /webhooks/event?source=...&id=...
func (a *AdminAPI) handleShow(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	t, err := live.target(q.Get("store"))
	if err != nil {
		return apiError(err)
	}
	view, err := ops.Show(r.Context(), t, q.Get("source"), q.Get("id"))
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, view)
}

// handleCounts serves GET /webhooks/counts.
func (a *AdminAPI) handleCounts(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	t, err := live.target(r.URL.Query().Get("store"))
	if err != nil {
		return apiError(err)
	}
	out, err := ops.Counts(r.Context(), t)
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
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
	case !byID && req.Delivery != "":
		return badRequest(errors.New(`"delivery" names a delivery of the event given by "source" and "id"; a filter selects deliveries with its "destination"`))
	case !byID && req.Filter == nil && !req.All:
		return badRequest(errors.New(`nothing to replay: give "source" and "id", or a "filter" (with "all": true to replay every event)`))
	}
	t, err := live.target(req.Store)
	if err != nil {
		return apiError(err)
	}
	var out any
	if byID {
		out, err = ops.Replay(r.Context(), t, req.Source, req.ID, req.Delivery, req.Destination, req.DryRun)
	} else {
		f, limit, ferr := ops.ActionFilter(req.Filter, req.All)
		if ferr != nil {
			return apiError(ferr)
		}
		out, err = ops.ReplayMatching(r.Context(), t, f, req.Destination, limit, req.DryRun)
	}
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
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
	f, limit, err := ops.ActionFilter(req.Filter, req.All)
	if err != nil {
		return apiError(err)
	}
	t, err := live.target(req.Store)
	if err != nil {
		return apiError(err)
	}
	out, err := ops.Purge(r.Context(), t, f, limit)
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// SkipRequest is the body of POST /webhooks/skip: the dead delivery to
// settle as skipped, so that its lane goes on.
type SkipRequest struct {
	// Store is the name of the store; needed only when several are
	// loaded.
	Store string `json:"store,omitempty"`
	// Source and ID name the event.
	Source string `json:"source"`
	ID     string `json:"id"`
	// Destination names its delivery.
	Destination string `json:"destination"`
}

// PauseRequest is the body of POST /webhooks/pause and /webhooks/resume.
type PauseRequest struct {
	// Store is the name of the store; needed only when several are
	// loaded.
	Store string `json:"store,omitempty"`
	// Destination names the destination to pause or resume in this
	// gateway.
	Destination string `json:"destination"`
}

// handleSkip serves POST /webhooks/skip.
func (a *AdminAPI) handleSkip(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	var req SkipRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	t, err := live.target(req.Store)
	if err != nil {
		return apiError(err)
	}
	out, err := ops.Skip(r.Context(), t, req.Source, req.ID, req.Destination)
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// handleDestinations serves GET /webhooks/destinations.
func (a *AdminAPI) handleDestinations(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	t, err := live.target(r.URL.Query().Get("store"))
	if err != nil {
		return apiError(err)
	}
	out, err := ops.Destinations(r.Context(), t)
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// handleLanes serves GET /webhooks/lanes?destination=...
func (a *AdminAPI) handleLanes(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet); err != nil {
		return err
	}
	q := r.URL.Query()
	t, err := live.target(q.Get("store"))
	if err != nil {
		return apiError(err)
	}
	out, err := ops.Lanes(r.Context(), t, q.Get("destination"))
	if err != nil {
		return apiError(err)
	}
	return writeJSON(w, http.StatusOK, out)
}

// handlePause serves POST /webhooks/pause (paused true) and
// /webhooks/resume.
func (a *AdminAPI) handlePause(paused bool) caddy.AdminHandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := allow(w, r, http.MethodPost); err != nil {
			return err
		}
		var req PauseRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		t, err := live.target(req.Store)
		if err != nil {
			return apiError(err)
		}
		out, err := ops.Pause(t, req.Destination, paused)
		if err != nil {
			return apiError(err)
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

// apiError gives an operation's error the status of its kind.
func apiError(err error) error {
	return caddy.APIError{HTTPStatus: ops.HTTPStatus(err), Err: err}
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
