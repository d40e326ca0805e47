package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
)

// hostileSite has an async loyalty route, an async payment route signed by
// HMAC alone (so every body is read before anything is verified) with a
// small body limit and budget, and a sync loyalty route.
func hostileSite(backend *backend) string {
	return fmt.Sprintf(`http://127.0.0.1:{{PORT}} {
	route /hooks/openloyalty {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			max_event_age off
			auth header `+loyaltyHeader+` {env.TEST_LOYALTY_TOKEN}
			upstream %[1]s
		}
	}
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			auth hmac {env.TEST_SIG_KEY}
			max_body 64KiB
			max_unverified 256KiB
			upstream %[1]s
		}
	}
	route /sync/openloyalty {
		webhook_gateway openloyalty {
			store_dir {{DIR}}/store
			max_event_age off
			source /sync-loyalty
			auth header `+loyaltyHeader+` {env.TEST_LOYALTY_TOKEN}
			deliver sync
		}
		reverse_proxy %[2]s
	}
}
`, backend.URL, backend.host())
}

func startHostile(t *testing.T) (*testcaddy.Instance, *backend) {
	t.Helper()
	be := newBackend(t)
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(hostileSite(be))
	return gw, be
}

// requestHead is an HTTP/1.1 request line and headers, up to the blank line.
func requestHead(gw *testcaddy.Instance, path string, header ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n", path, gw.Port)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func dial(t *testing.T, gw *testcaddy.Instance) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gw.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readAnswer reads one response from conn, failing the test if none comes
// within a few seconds.
func readAnswer(t *testing.T, conn net.Conn) *http.Response {
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
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

func freshCustomer(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(raw)
}

// customers lists the customerId of every event the backend got with a 2xx.
func (b *backend) customers() map[string]int {
	out := map[string]int{}
	for _, r := range b.received() {
		data, _ := r.Event["data"].(map[string]any)
		if id, ok := data["customerId"].(string); ok && r.Status >= 200 && r.Status < 300 {
			out[id]++
		}
	}
	return out
}

// TestHangUpAfterFullBodyLosesNothing sends loyalty webhooks in full and
// closes each connection at once, as the loyalty platform's sender does at
// its one-second timeout: every event is stored and delivered.
func TestHangUpAfterFullBodyLosesNothing(t *testing.T) {
	gw, be := startHostile(t)

	hangUp := func(t *testing.T, path string, body []byte) {
		conn := dial(t, gw)
		head := requestHead(gw, path, loyaltyHeader+": "+loyaltyToken, "Content-Length: "+strconv.Itoa(len(body)))
		if _, err := conn.Write(append([]byte(head), body...)); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}

	for _, tc := range []struct {
		name, path, source string
		batch              bool
	}{
		{"async single", "/hooks/openloyalty", "/openloyalty", false},
		{"async batch", "/hooks/openloyalty", "/openloyalty", true},
		{"sync single", "/sync/openloyalty", "/sync-loyalty", false},
		{"sync batch", "/sync/openloyalty", "/sync-loyalty", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			// Several requests, each on its own connection, so that a
			// cancellation racing the store write cannot pass by luck; a
			// batch large enough that normalizing it outlasts the moment
			// the server notices the hang-up.
			requests, items := 10, 1
			if tc.batch {
				requests, items = 2, 500
			}
			for range requests {
				var data []string
				for range items {
					id := freshCustomer(t)
					want = append(want, id)
					data = append(data, fmt.Sprintf(`{"customerId":"%s","points":1}`, id))
				}
				body := `{"type":"customer.updated","data":` + data[0] + `}`
				if tc.batch {
					body = `{"type":"account.expiring_points_notification","data":[` + strings.Join(data, ",") + `]}`
				}
				hangUp(t, tc.path, []byte(body))
			}
			waitFor(t, 15*time.Second, "every event delivered", func() bool {
				got := be.customers()
				for _, id := range want {
					if got[id] == 0 {
						return false
					}
				}
				return true
			})
			var list listed
			if code := adminGet(t, gw, "/webhooks/events?limit=1000&status=delivered&source="+tc.source, &list); code != http.StatusOK {
				t.Fatalf("list: %d", code)
			}
			if len(list.Events) < len(want) {
				t.Fatalf("%d delivered events stored for %s, want at least %d", len(list.Events), tc.source, len(want))
			}
		})
	}
}

// TestOverLimitAnsweredAtOnce: a declared length over max_body gets its 413
// before the body is read, and closes the connection; an over-limit body
// that declares no length, or declares it honestly, gets 413 too.
func TestOverLimitAnsweredAtOnce(t *testing.T) {
	gw, _ := startHostile(t)
	const limit = 64 << 10

	check := func(t *testing.T, resp *http.Response) {
		t.Helper()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413: %s", resp.StatusCode, body)
		}
		// ReadResponse turns the Connection header into resp.Close.
		if !resp.Close {
			t.Errorf("413 without Connection: close: %v", resp.Header)
		}
		if !strings.Contains(string(body), "exceeds the limit of 65536 bytes") {
			t.Errorf("body %s", body)
		}
	}

	t.Run("declared 12MiB, 1KiB sent", func(t *testing.T) {
		conn := dial(t, gw)
		head := requestHead(gw, "/hooks/usaepay", "X-Signature: 00", "Content-Length: 12582912")
		if _, err := conn.Write(append([]byte(head), bytes.Repeat([]byte("x"), 1024)...)); err != nil {
			t.Fatal(err)
		}
		check(t, readAnswer(t, conn))
	})
	t.Run("declared 12MiB, waits for 100 Continue", func(t *testing.T) {
		conn := dial(t, gw)
		head := requestHead(gw, "/hooks/usaepay", "X-Signature: 00", "Content-Length: 12582912", "Expect: 100-continue")
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		resp := readAnswer(t, conn)
		if resp.StatusCode == http.StatusContinue {
			t.Fatal("100 Continue for a body over the limit")
		}
		check(t, resp)
	})
	t.Run("declared honestly, sent in full", func(t *testing.T) {
		conn := dial(t, gw)
		head := requestHead(gw, "/hooks/usaepay", "X-Signature: 00", "Content-Length: "+strconv.Itoa(limit+1))
		if _, err := conn.Write(append([]byte(head), bytes.Repeat([]byte("x"), limit+1)...)); err != nil {
			t.Fatal(err)
		}
		check(t, readAnswer(t, conn))
	})
	t.Run("a client still sending its body", func(t *testing.T) {
		// Go's client reads the answer while it writes; the server must
		// close gracefully, or a reset replaces the 413.
		big := bytes.Repeat([]byte("x"), 4<<20)
		for range 5 {
			code, answer, err := send(gw.BaseURL()+"/hooks/usaepay", big, signedHeader(big))
			if err != nil || code != http.StatusRequestEntityTooLarge {
				t.Fatalf("got %d %v %v, want 413", code, answer, err)
			}
		}
	})
	t.Run("chunked, no length declared", func(t *testing.T) {
		conn := dial(t, gw)
		head := requestHead(gw, "/hooks/usaepay", "X-Signature: 00", "Transfer-Encoding: chunked")
		var req bytes.Buffer
		req.WriteString(head)
		chunk := bytes.Repeat([]byte("x"), 16<<10)
		for range 5 { // 80 KiB in all
			fmt.Fprintf(&req, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		// No last chunk: the gateway must not wait for the end of a body
		// already past the limit.
		if _, err := conn.Write(req.Bytes()); err != nil {
			t.Fatal(err)
		}
		check(t, readAnswer(t, conn))
	})
}

// TestUnverifiedBodiesAreBudgeted: bodies not yet verified hold at most the
// route's max_unverified in all; a request past it gets 503 with
// Retry-After at once, and the budget comes back once they are gone.
func TestUnverifiedBodiesAreBudgeted(t *testing.T) {
	gw, be := startHostile(t)
	const (
		conns    = 8
		declared = 60000
		sent     = 40000
	)
	// Each body, once 40000 bytes are in, needs a buffer of its declared
	// 60000 bytes: 256 KiB holds four of them at most.
	answers := make(chan *http.Response, conns)
	var wg sync.WaitGroup
	var stalled []net.Conn
	for range conns {
		conn := dial(t, gw)
		stalled = append(stalled, conn)
		head := requestHead(gw, "/hooks/usaepay", "X-Signature: 00", "Content-Length: "+strconv.Itoa(declared))
		if _, err := conn.Write(append([]byte(head), bytes.Repeat([]byte("x"), sent)...)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				answers <- resp
			}
		}()
	}
	wg.Wait()
	close(answers)
	refused := 0
	for resp := range answers {
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			!resp.Close || !strings.Contains(string(body), "unverified") {
			t.Fatalf("answer to a stalled body: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		refused++
	}
	if refused < conns-4 {
		t.Fatalf("%d of %d stalled bodies refused; the budget holds 4", refused, conns)
	}

	// Once the stalled bodies' connections close, their budget comes back:
	// a webhook as large as any of them is taken, where the budget left
	// beside four of them would not hold it.
	for _, conn := range stalled {
		conn.Close()
	}
	id, body := paymentEvent(t)
	body = bytes.Replace(body, []byte(`"amount_detail"`),
		[]byte(`"description":"`+strings.Repeat("x", declared-len(body))+`","amount_detail"`), 1)
	waitFor(t, 10*time.Second, "a webhook accepted after the stalled bodies", func() bool {
		code, _, err := send(gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
		return err == nil && code == http.StatusAccepted
	})
	waitFor(t, 10*time.Second, "delivery", func() bool { return be.deliveredOK(id) })
}

// TestHeaderCheckFailsBeforeTheBody: on a route whose checks need no body
// (a header, Basic, a path secret), a request without the credential is
// refused before its body is read, or even asked for.
func TestHeaderCheckFailsBeforeTheBody(t *testing.T) {
	gw, _ := startHostile(t)
	conn := dial(t, gw)
	head := requestHead(gw, "/hooks/openloyalty", loyaltyHeader+": wrong", "Content-Length: 1000000", "Expect: 100-continue")
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	resp := readAnswer(t, conn)
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("got %d (close %v), want 401 and Connection: close", resp.StatusCode, resp.Close)
	}
}

// heapAlloc runs a GC in the gateway process and returns its live heap,
// from the admin endpoint's heap profile.
func heapAlloc(t *testing.T, gw *testcaddy.Instance) int64 {
	t.Helper()
	resp, err := http.Get(gw.AdminURL() + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no HeapAlloc in the heap profile (status %d)", resp.StatusCode)
	return 0
}

// TestDeclaredLengthsDoNotGrowTheHeap: connections that each declare
// nearly max_body and send one byte make the gateway hold what they sent,
// not what they declared.
func TestDeclaredLengthsDoNotGrowTheHeap(t *testing.T) {
	gw, _ := startHostile(t)
	const (
		conns    = 200
		declared = 5_000_000
	)
	before := heapAlloc(t, gw)
	for range conns {
		conn := dial(t, gw)
		head := requestHead(gw, "/hooks/openloyalty", loyaltyHeader+": "+loyaltyToken, "Content-Length: "+strconv.Itoa(declared))
		if _, err := conn.Write(append([]byte(head), '{')); err != nil {
			t.Fatal(err)
		}
	}
	// The handlers start reading within moments; sample the heap a few
	// times while every connection is still open.
	peak := before
	for range 5 {
		time.Sleep(200 * time.Millisecond)
		peak = max(peak, heapAlloc(t, gw))
	}
	growth := peak - before
	t.Logf("heap %d -> %d bytes with %d connections declaring %d bytes each", before, peak, conns, declared)
	if limit := int64(conns) * declared / 20; growth > limit {
		t.Fatalf("heap grew by %d bytes, over 5%% of the %d declared", growth, int64(conns)*declared)
	}
}

// TestNoSecretStoredOrForwarded: stored headers are an allow-list, so a
// Proxy-Authorization or a cookie is never kept; a sync backend sees the
// path secret neither in the path nor in the query.
func TestNoSecretStoredOrForwarded(t *testing.T) {
	t.Run("stored headers", func(t *testing.T) {
		gw, be := startHostile(t)
		id, body := paymentEvent(t)
		h := signedHeader(body)
		h.Set("Proxy-Authorization", "Basic c2VjcmV0OnNlY3JldA==")
		h.Set("Cookie", "session=secret")
		h.Set("X-Api-Key", "secret-key")
		h.Set("User-Agent", "USAePay-Webhooks/2")
		h.Set("X-Request-Id", "req-42")
		if code, answer := post(t, gw.BaseURL()+"/hooks/usaepay", body, h); code != http.StatusAccepted {
			t.Fatalf("%d %v", code, answer)
		}
		waitFor(t, 10*time.Second, "delivery", func() bool { return be.deliveredOK(id) })
		var shown struct {
			Headers http.Header `json:"headers"`
		}
		if code := adminGet(t, gw, "/webhooks/event?source=/usaepay&id="+id, &shown); code != http.StatusOK {
			t.Fatalf("show: %d", code)
		}
		for _, name := range []string{"Proxy-Authorization", "Cookie", "X-Api-Key", "X-Signature"} {
			if v := shown.Headers.Get(name); v != "" {
				t.Errorf("stored headers keep %s: %q", name, v)
			}
		}
		if shown.Headers.Get("User-Agent") != "USAePay-Webhooks/2" || shown.Headers.Get("X-Request-Id") != "req-42" {
			t.Errorf("inspection headers not stored: %v", shown.Headers)
		}
	})

	t.Run("sync query", func(t *testing.T) {
		gw, be := startSync(t)
		body := fixture(t, "sublytics", "order_updated")
		url := gw.BaseURL() + "/hooks/sublytics/" + sublyticsToken + "?token=" + sublyticsToken + "&back=%2Fhooks%2F" + sublyticsToken + "&keep=1"
		if code, answer := post(t, url, body, nil); code != http.StatusOK {
			t.Fatalf("%d %v", code, answer)
		}
		got := be.received()
		if len(got) != 1 {
			t.Fatalf("backend got %d requests", len(got))
		}
		if strings.Contains(got[0].Path, sublyticsToken) {
			t.Fatalf("the secret reached the backend: %s", got[0].Path)
		}
		if want := "/hooks/sublytics/REDACTED?token=REDACTED&back=REDACTED&keep=1"; got[0].Path != want {
			t.Errorf("backend request URI %q, want %q", got[0].Path, want)
		}
	})
}
