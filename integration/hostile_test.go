package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// hostileSite has an async loyalty route, an async payment route signed by
// HMAC alone (so every body is read before anything is verified) with a
// small body limit and budget, the same with a short unverified_timeout,
// and a sync loyalty route. Each client address has a share of 64KiB+1 of
// a budget (the most a body of max_body may need), a quarter of 256KiB
// being less.
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
	route /hooks/drip {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			max_event_age off
			source /drip
			auth hmac {env.TEST_SIG_KEY}
			max_body 64KiB
			max_unverified 256KiB
			unverified_timeout 1s
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
	return dialFrom(t, gw, "127.0.0.1")
}

// dialFrom connects from a loopback address of its own (all of 127/8 is
// the loopback interface's), a client address as the gateway sees it.
func dialFrom(t *testing.T, gw *testcaddy.Instance, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", gw.Port))
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
			testwait.For(t, "every event delivered", func() bool {
				got := be.customers()
				for _, id := range want {
					if got[id] == 0 {
						return false
					}
				}
				return true
			})
			// A sync delivery is recorded after the backend's answer:
			// wait for the store too.
			var list listed
			testwait.For(t, "every event stored as delivered", func() bool {
				list = listed{}
				if code := adminGet(t, gw, "/webhooks/events?limit=1000&status=delivered&source="+tc.source, &list); code != http.StatusOK {
					t.Fatalf("list: %d", code)
				}
				return len(list.Events) >= len(want)
			})
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
	t.Run("declared 12MiB, 1KiB sent, then a byte now and then", func(t *testing.T) {
		// The rest of the body is read for up to 10 s after a 413, for a
		// client that sends all of it first; the answer does not wait
		// for that.
		d := startDripper(t, gw, "/hooks/usaepay", "127.0.0.1", 12<<20, 1024, 5*time.Second)
		end := <-d.end
		if end.err != nil {
			t.Fatalf("no answer: %v", end.err)
		}
		end.resp.Body = io.NopCloser(strings.NewReader(end.body))
		check(t, end.resp)
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
	// 60000 bytes: 256 KiB holds four of them at most. Each comes from an
	// address of its own, so that its address's share is not what refuses
	// it.
	answers := make(chan *http.Response, conns)
	var wg sync.WaitGroup
	var stalled []net.Conn
	for i := range conns {
		conn := dialFrom(t, gw, fmt.Sprintf("127.0.0.%d", 10+i))
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
			!resp.Close || !strings.Contains(string(body), "unverified") || strings.Contains(string(body), "your address") {
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
	testwait.For(t, "a webhook accepted after the stalled bodies", func() bool {
		code, _, err := send(gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
		return err == nil && code == http.StatusAccepted
	})
	testwait.For(t, "delivery", func() bool { return be.deliveredOK(id) })
}

// dripper is the slow-drip attack: a head and part of a body from one
// client address, then a byte every 100 ms for as long as the connection
// takes them. end gets what ended it: the gateway's answer, or the error
// that closed the connection.
type dripper struct {
	conn net.Conn
	end  chan dripEnd
}

type dripEnd struct {
	resp *http.Response
	body string
	err  error
}

func startDripper(t *testing.T, gw *testcaddy.Instance, path, from string, declared, sent int, wait time.Duration) *dripper {
	t.Helper()
	conn := dialFrom(t, gw, from)
	head := requestHead(gw, path, "X-Signature: 00", "Content-Length: "+strconv.Itoa(declared))
	if _, err := conn.Write(append([]byte(head), bytes.Repeat([]byte("x"), sent)...)); err != nil {
		t.Fatal(err)
	}
	d := &dripper{conn: conn, end: make(chan dripEnd, 1)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for sent < declared {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			sent++
		}
	}()
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			d.end <- dripEnd{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		d.end <- dripEnd{resp: resp, body: string(body)}
	}()
	return d
}

// probe sends a two-byte body with a wrong signature from an address:
// 401 when the body could be read, 503 when its address's share or the
// route's budget could not give it 512 bytes of buffer.
func probe(t *testing.T, gw *testcaddy.Instance, path, from string) (int, string) {
	t.Helper()
	conn := dialFrom(t, gw, from)
	defer conn.Close()
	head := requestHead(gw, path, "X-Signature: 00", "Content-Length: 2")
	if _, err := conn.Write([]byte(head + "{}")); err != nil {
		t.Fatal(err)
	}
	resp := readAnswer(t, conn)
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestSlowDripCannotHoldTheBudget: connections that send part of a body
// and then a byte now and then, which Caddy's idle timeout never ends,
// hold no more than their address's share of the route's budget, and only
// until unverified_timeout: signed webhooks from elsewhere are still taken.
func TestSlowDripCannotHoldTheBudget(t *testing.T) {
	// Four bodies each declaring max_body and 48 KiB in, a 64 KiB buffer
	// each: together the whole 256 KiB of the route's budget.
	const (
		declared = 64 << 10
		sent     = 48 << 10
	)
	gw, be := startHostile(t)

	t.Run("four connections from one address", func(t *testing.T) {
		// /hooks/usaepay cuts an unverified body after the default 10s,
		// long past this subtest's need.
		holder := startDripper(t, gw, "/hooks/usaepay", "127.0.0.2", declared, sent, 20*time.Second)
		// Once a probe from the dripper's address is refused for its
		// share, the dripper holds it.
		testwait.For(t, "the dripper holding its address's share", func() bool {
			code, body := probe(t, gw, "/hooks/usaepay", "127.0.0.2")
			return code == http.StatusServiceUnavailable && strings.Contains(body, "from your address")
		})
		for range 3 {
			d := startDripper(t, gw, "/hooks/usaepay", "127.0.0.2", declared, sent, 5*time.Second)
			end := <-d.end
			if end.err != nil || end.resp.StatusCode != http.StatusServiceUnavailable ||
				end.resp.Header.Get("Retry-After") == "" || !end.resp.Close || !strings.Contains(end.body, "from your address") {
				t.Fatalf("another dripper from the same address: %+v", end)
			}
		}

		// A real sender, from another address, during the drip.
		id, body := paymentEvent(t)
		code, answer, err := send(gw.BaseURL()+"/hooks/usaepay", body, signedHeader(body))
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("a signed webhook during the drip: %d %v %v", code, answer, err)
		}
		select {
		case end := <-holder.end:
			t.Fatalf("the dripper was answered before the real sender was: %+v", end)
		default:
		}
		if code, body := probe(t, gw, "/hooks/usaepay", "127.0.0.2"); code != http.StatusServiceUnavailable {
			t.Fatalf("the dripper no longer holds its share after the real sender's answer: %d %s", code, body)
		}
		testwait.For(t, "delivery", func() bool { return be.deliveredOK(id) })
	})

	t.Run("from several addresses, cut by unverified_timeout", func(t *testing.T) {
		var drippers []*dripper
		for i := range 4 {
			drippers = append(drippers, startDripper(t, gw, "/hooks/drip", fmt.Sprintf("127.0.0.%d", 20+i), declared, sent, 20*time.Second))
		}
		// Each is cut once its second is up: answered 408 with
		// Connection: close, or, if its next byte came in before the close,
		// reset; never left open.
		for i, d := range drippers {
			end := <-d.end
			var ne net.Error
			if errors.As(end.err, &ne) && ne.Timeout() {
				t.Fatalf("dripper %d still connected: %v", i, end.err)
			}
			if end.resp != nil && (end.resp.StatusCode != http.StatusRequestTimeout || !end.resp.Close ||
				!strings.Contains(end.body, "not received in time")) {
				t.Fatalf("dripper %d: %d %v %s", i, end.resp.StatusCode, end.resp.Header, end.body)
			}
			t.Logf("dripper %d: %v %v", i, end.resp != nil, end.err)
		}
		// Their budget is back.
		id, body := paymentEvent(t)
		testwait.For(t, "a webhook accepted after the drippers", func() bool {
			code, _, err := send(gw.BaseURL()+"/hooks/drip", body, signedHeader(body))
			return err == nil && code == http.StatusAccepted
		})
		testwait.For(t, "delivery", func() bool { return be.deliveredOK(id) })
	})
}

// TestOverLimitBodyWrittenInFull: a client that writes all of an
// over-limit body before it reads the answer, as Python's urllib does,
// reads its 413 instead of a reset connection, whether the length was
// declared or found while reading, and on a route whose check needs no
// body too.
func TestOverLimitBodyWrittenInFull(t *testing.T) {
	gw, _ := startHostile(t)
	big := bytes.Repeat([]byte("x"), 12<<20)
	var chunked bytes.Buffer
	for rest := big; len(rest) > 0; rest = rest[1<<20:] {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 1<<20, rest[:1<<20])
	}
	chunked.WriteString("0\r\n\r\n")
	for _, tc := range []struct {
		name, path string
		limit      int
		header     []string
		body       []byte
	}{
		{"declared", "/hooks/usaepay", 64 << 10, []string{"X-Signature: 00", "Content-Length: " + strconv.Itoa(len(big))}, big},
		{"chunked", "/hooks/usaepay", 64 << 10, []string{"X-Signature: 00", "Transfer-Encoding: chunked"}, chunked.Bytes()},
		{"authenticated route", "/hooks/openloyalty", 5 << 20, []string{loyaltyHeader + ": " + loyaltyToken, "Content-Length: " + strconv.Itoa(len(big))}, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, gw)
			if _, err := conn.Write(append([]byte(requestHead(gw, tc.path, tc.header...)), tc.body...)); err != nil {
				t.Fatalf("the connection failed before the body was written: %v", err)
			}
			resp := readAnswer(t, conn)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close ||
				!strings.Contains(string(body), fmt.Sprintf("exceeds the limit of %d bytes", tc.limit)) {
				t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
			}
		})
	}
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
		testwait.For(t, "delivery", func() bool { return be.deliveredOK(id) })
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
