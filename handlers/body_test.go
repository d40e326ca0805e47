package handlers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/normalize"
	"github.com/webhookgw/caddy-webhook-gateway/verify"
)

func TestBudgetShareBoundsOneClient(t *testing.T) {
	route := newBodyBudget(1000, 400)
	a, b, c := route.share("a"), route.share("b"), route.share("c")
	if err := a.reserve(400); err != nil {
		t.Fatal(err)
	}
	err := a.reserve(1)
	if !errors.Is(err, ErrClientBudgetExhausted) || !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("past its share: %v", err)
	}
	if err := b.reserve(400); err != nil {
		t.Fatalf("another client, within its share: %v", err)
	}
	// 200 bytes are left of the route's 1000.
	if err := c.reserve(201); !errors.Is(err, ErrBudgetExhausted) || errors.Is(err, ErrClientBudgetExhausted) {
		t.Fatalf("past the route's budget: %v", err)
	}
	if err := c.reserve(200); err != nil {
		t.Fatal(err)
	}
	a.release(400)
	b.release(400)
	c.release(200)
	if route.used != 0 || len(route.byClient) != 0 {
		t.Fatalf("budget still holds %d bytes: %v", route.used, route.byClient)
	}
	// A share larger than the budget is the budget.
	if got := newBodyBudget(1000, 5000).perClient; got != 1000 {
		t.Fatalf("share %d of a budget of 1000", got)
	}
}

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:1234":               "192.0.2.1",
		"192.0.2.1":                    "192.0.2.1",
		"[::ffff:192.0.2.1]:80":        "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":         "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":            "fe80::/64",
		"@":                            "@",
		"/run/caddy.sock":              "/run/caddy.sock",
		"not an address, but a string": "not an address, but a string",
	} {
		if got := clientKey(addr); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", addr, got, want)
		}
	}

	g := &Gateway{}
	req := httptest.NewRequest(http.MethodPost, "/hooks", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	if got := g.clientKey(req); got != "192.0.2.1" {
		t.Errorf("without ClientAddr: %q", got)
	}
	g.ClientAddr = func(*http.Request) string { return "203.0.113.9" }
	if got := g.clientKey(req); got != "203.0.113.9" {
		t.Errorf("with ClientAddr: %q", got)
	}
	g.ClientAddr = func(*http.Request) string { return "" }
	if got := g.clientKey(req); got != "192.0.2.1" {
		t.Errorf("with an empty ClientAddr: %q", got)
	}
}

// hmacGateway is a gateway whose check needs the body, served by net/http
// on loopback, so that read deadlines and closes are real.
func hmacGateway(t *testing.T) (*Gateway, *counter, string) {
	t.Helper()
	g, obs := newGateway(t, Async, normalize.USAePay)
	sig, err := verify.NewHMAC(verify.HMACConfig{Keys: []string{"signing-key"}})
	if err != nil {
		t.Fatal(err)
	}
	g.Verifiers, g.SecretHeaders = []verify.Verifier{sig}, sig.SecretHeaders()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.ServeHTTP(w, r, nil); err != nil {
			t.Log(err)
		}
	}))
	t.Cleanup(srv.Close)
	return g, obs, srv.Listener.Addr().String()
}

func rawAnswer(t *testing.T, conn net.Conn) (*http.Response, string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestSlowUnverifiedBodyIsCut(t *testing.T) {
	g, obs, addr := hmacGateway(t)
	g.UnverifiedTimeout = 200 * time.Millisecond
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Part of the body, then silence: the read blocked on it must end.
	head := "POST /hooks HTTP/1.1\r\nHost: x\r\nX-Signature: 00\r\nContent-Length: 1000\r\n\r\n"
	if _, err := conn.Write([]byte(head + strings.Repeat("x", 600))); err != nil {
		t.Fatal(err)
	}
	resp, body := rawAnswer(t, conn)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close || !strings.Contains(body, "not received in time") {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	if obs.get("usaepay/timeout") != 1 {
		t.Errorf("outcomes %v", obs.seen)
	}
	b := g.unverifiedBudget()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used != 0 || len(b.byClient) != 0 {
		t.Errorf("budget still holds %d bytes: %v", b.used, b.byClient)
	}
}

// A client that writes all of an over-limit body before it reads gets its
// 413, whether the length was declared or found while reading.
func TestOverLimitBodyWrittenInFullGetsItsAnswer(t *testing.T) {
	_, _, addr := hmacGateway(t)
	big := bytes.Repeat([]byte("x"), 12<<20)
	var chunked bytes.Buffer
	for chunk := range slicesOf(big, 1<<20) {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	chunked.WriteString("0\r\n\r\n")
	for name, req := range map[string][]byte{
		"declared": append([]byte("POST /hooks HTTP/1.1\r\nHost: x\r\nX-Signature: 00\r\nContent-Length: 12582912\r\n\r\n"), big...),
		"chunked":  append([]byte("POST /hooks HTTP/1.1\r\nHost: x\r\nX-Signature: 00\r\nTransfer-Encoding: chunked\r\n\r\n"), chunked.Bytes()...),
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(req); err != nil {
				t.Fatalf("writing the body: %v", err)
			}
			resp, body := rawAnswer(t, conn)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
				t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
			}
		})
	}
}

// slicesOf yields b in pieces of n bytes.
func slicesOf(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

// A body cut by the server's own read timeout, on a route whose check needs
// no body, is answered 408 as well.
func TestServerReadTimeoutIsRequestTimeout(t *testing.T) {
	g, obs := newGateway(t, Async, normalize.USAePay)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.ServeHTTP(w, r, nil); err != nil {
			t.Log(err)
		}
	}))
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /hooks HTTP/1.1\r\nHost: x\r\n" + tokenHeader + ": " + token + "\r\nContent-Length: 1000\r\n\r\n"
	if _, err := conn.Write([]byte(head + "{")); err != nil {
		t.Fatal(err)
	}
	resp, body := rawAnswer(t, conn)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	if obs.get("usaepay/timeout") != 1 {
		t.Errorf("outcomes %v", obs.seen)
	}
}

// After a 413 the rest of the body is read only while it keeps coming: a
// client that declared more than it sends is left once it is silent.
func TestLingerEndsWhenTheClientIsSilent(t *testing.T) {
	_, _, addr := hmacGateway(t)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /hooks HTTP/1.1\r\nHost: x\r\nX-Signature: 00\r\nContent-Length: 12582912\r\n\r\n"
	if _, err := conn.Write([]byte(head + strings.Repeat("x", 1024))); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(2 * lingerIdle))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d", resp.StatusCode)
	}
	// Closed (EOF) before the read deadline, well short of lingerTime.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer: %v, want the connection closed", err)
	}
}
