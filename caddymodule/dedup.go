package caddymodule

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

// ErrDedupWindowTooShort is wrapped by the Provision error of a route whose
// explicit dedup_window is shorter than its auth's timestamp tolerance.
var ErrDedupWindowTooShort = errors.New("shorter than the timestamp tolerance of the route's auth")

// requestIDSigned reports whether one of the route's signatures covers its
// id_header, so that no accepted request carries an id its sender did not
// sign.
func requestIDSigned(idHeader string, verifiers []verify.Verifier) bool {
	if idHeader == "" {
		return false
	}
	for _, v := range verifiers {
		if hs, ok := v.(verify.HeaderSigner); ok && hs.SignsHeader(idHeader) {
			return true
		}
	}
	return false
}

// contentDedupWindow is the dedup window the route's content keys get. A
// check of a signed timestamp lets a captured request pass again, as sent,
// for as long as its tolerance, so content dedup must last at least that
// long: the default is raised to the largest tolerance, and a shorter
// explicit dedup_window (off included) is refused rather than overridden,
// so that the config says what runs. This matters only to a route that
// dedups by content (a provider without event ids, or auto), and not when
// every accepted request carries a signed request id, which then is its
// dedup key.
func (h *Handler) contentDedupWindow(verifiers []verify.Verifier, explicit, idSigned bool) (time.Duration, error) {
	window := time.Duration(*h.DedupWindow)
	if (h.Provider != normalize.Auto && !normalize.DerivesIDs(h.Provider)) || idSigned {
		return window, nil
	}
	var tolerance time.Duration
	for _, v := range verifiers {
		if tc, ok := v.(verify.TimestampChecker); ok {
			tolerance = max(tolerance, tc.Tolerance())
		}
	}
	if window >= tolerance {
		return window, nil
	}
	if explicit {
		set := "dedup_window " + window.String()
		if window == 0 {
			set = "dedup_window off"
		}
		return 0, fmt.Errorf("%s: %w (%s): a captured request re-sent within the tolerance would be a new event; "+
			"set dedup_window to at least %s, lower the tolerance, "+
			"or sign the request id (id_header, and {header.<id_header>} in the hmac signed_content)",
			set, ErrDedupWindowTooShort, tolerance, tolerance)
	}
	h.logger.Debug("dedup window raised to the timestamp tolerance of the route's auth",
		zap.Duration("dedup_window", tolerance))
	return tolerance, nil
}
