package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// answer writes one response through c's wrapper and reports whether it
// asked the client to close the connection.
func answer(c *loadedConfig) bool {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	w := c.closeIfSuperseded(rec, r)
	w.WriteHeader(http.StatusAccepted)
	return rec.Result().Header.Get("Connection") == "close"
}

func TestConfigGenerations(t *testing.T) {
	newConfig := func() caddy.Context {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		return ctx
	}
	running := newConfig()
	a, leaveA := joinConfig(running)
	a2, leaveA2 := joinConfig(running)
	if a != a2 {
		t.Fatal("two handlers of one config got different generations")
	}
	if answer(a) {
		t.Fatal("the only config answered with Connection: close")
	}

	// A new config that fails to load: its handlers are cleaned up and the
	// running config keeps its keep-alive.
	failed, leaveFailed := joinConfig(newConfig())
	if !answer(a) || answer(failed) {
		t.Fatal("while a newer config provisions, only the older one closes connections")
	}
	leaveFailed()
	leaveFailed() // idempotent, as a Cleanup may run twice
	if answer(a) {
		t.Fatal("the running config still closes connections after the new one failed")
	}

	// A new config that loads: the old one closes connections until its
	// last handler is cleaned up.
	next, leaveNext := joinConfig(newConfig())
	defer leaveNext()
	leaveA()
	if !answer(a2) {
		t.Fatal("the old config stopped closing connections before its last handler left")
	}
	leaveA2()
	if answer(next) {
		t.Fatal("the new config closes connections")
	}

	// HTTP/2 has no Connection header: the writer is left alone.
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.ProtoMajor = 2
	rec := httptest.NewRecorder()
	if w := a.closeIfSuperseded(rec, r); w != http.ResponseWriter(rec) {
		t.Fatal("an HTTP/2 response was wrapped")
	}
}
