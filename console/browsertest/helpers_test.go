package browsertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Hostile content a provider (or whoever can reach a route) may put in an
// event; the console must show it as text (the same as the console
// package's handler tests use).
const (
	xssScript = `<script>alert("x")</script>`
	xssAttr   = `"><img src=x onerror=alert(1)>`
)

// backend is the merchant's backend on loopback: it answers every request
// with the status set last.
type backend struct {
	*httptest.Server
	status atomic.Int32
}

func newBackend(t *testing.T) *backend {
	be := &backend{}
	be.status.Store(http.StatusOK)
	be.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(be.status.Load()))
	}))
	t.Cleanup(be.Close)
	return be
}

func (b *backend) setStatus(s int) { b.status.Store(int32(s)) }
