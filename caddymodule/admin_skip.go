package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

func init() {
	caddy.RegisterModule(SkipAPI{})
}

// Interface guard.
var _ caddy.AdminRouter = (*SkipAPI)(nil)

// SkipAPI serves POST /webhooks/skip on Caddy's admin API: an operator
// settles a dead delivery as skipped, so that the ordered lane it parks
// moves on without it. Like AdminAPI it needs no configuration.
type SkipAPI struct{}

// CaddyModule returns the Caddy module information.
func (SkipAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.webhook_gateway_skip",
		New: func() caddy.Module { return new(SkipAPI) },
	}
}

// Routes returns the /webhooks/skip endpoint.
func (a *SkipAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/webhooks/skip", Handler: caddy.AdminHandlerFunc(a.handleSkip)},
	}
}

// SkipRequest is the body of POST /webhooks/skip.
type SkipRequest struct {
	// Store is the name of the store; needed only when several are
	// loaded.
	Store string `json:"store,omitempty"`
	// Source and ID name the event; Destination the delivery, which must
	// be dead.
	Source      string `json:"source"`
	ID          string `json:"id"`
	Destination string `json:"destination"`
}

// handleSkip serves POST /webhooks/skip: it answers ops.Skip's result,
// 404 for an absent event or delivery, 409 for a delivery that is not
// dead. The destination's workers are woken, so the lane's
// next delivery goes out at once.
func (a *SkipAPI) handleSkip(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodPost); err != nil {
		return err
	}
	var req SkipRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Source == "" || req.ID == "" || req.Destination == "" {
		return badRequest(errors.New("skip needs source, id and destination"))
	}
	t, err := live.target(req.Store)
	if err != nil {
		return apiError(err)
	}
	out, err := ops.Skip(r.Context(), t, req.Source, req.ID, req.Destination)
	if err != nil {
		return apiError(err)
	}
	if e, err := live.engine(t.Name, req.Destination); err == nil {
		e.Notify()
	}
	return writeJSON(w, http.StatusOK, out)
}
