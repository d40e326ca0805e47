package handlers

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Statuses in the JSON answer a provider gets.
const (
	statusAccepted   = "accepted"
	statusDelivered  = "delivered"
	statusDuplicate  = "duplicate"
	statusInProgress = "in_progress"
	statusFailed     = "failed"
)

// eventAnswer is one event's line in a batch answer.
type eventAnswer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// answer is the body of every non-error response. A single-event request
// gets {"status","id"}; a batch also lists each event.
type answer struct {
	Status string        `json:"status"`
	ID     string        `json:"id,omitempty"`
	Events []eventAnswer `json:"events,omitempty"`
}

func writeAnswer(w http.ResponseWriter, code int, status string, events []eventAnswer) error {
	a := answer{Status: status}
	if len(events) == 1 {
		a.ID = events[0].ID
	} else {
		a.Events = events
	}
	return writeJSON(w, code, a)
}

// writeError answers with {"error": msg}. Messages name the problem
// precisely but never echo a secret.
func writeError(w http.ResponseWriter, code int, msg string) error {
	return writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	// Declared, so that an answer flushed before the handler is done (see
	// linger) is complete to a client that reads it, not an open chunked
	// stream.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, err = w.Write(body)
	return err
}

// captureWriter stands in for the provider's connection while the next
// handler talks to the backend: the provider gets the gateway's own answer,
// never the backend's.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	// 1xx are informational; the final status is what counts.
	if c.status == 0 && code >= 200 {
		c.status = code
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return len(p), nil
}

// Flush lets streaming proxies flush without effect.
func (c *captureWriter) Flush() {}
