package handlers

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// DefaultMaxUnverified bounds, per route, the bytes held by request bodies
// that are read but not yet verified when none is configured: a dozen
// bodies of the default maximum size at once.
const DefaultMaxUnverified = 64 << 20

// DefaultUnverifiedTimeout bounds, when none is configured, how long a body
// that is read before anything has verified it may take to arrive. Webhook
// bodies are kilobytes sent in one go; this is seconds for the largest body
// a route accepts by default, and what a sender that stops sending can hold
// its share of the budget for.
const DefaultUnverifiedTimeout = 10 * time.Second

// ErrBudgetExhausted is returned by the body reader when the route's budget
// for unverified bodies is spent: the request is answered 503 with a
// Retry-After before more of its body is read.
var ErrBudgetExhausted = errors.New("route's budget for unverified request bodies exhausted")

// ErrClientBudgetExhausted is returned by the body reader when the bodies
// of the request's client address hold its whole share of the route's
// budget, while other clients may still have theirs. It wraps
// ErrBudgetExhausted.
var ErrClientBudgetExhausted = fmt.Errorf("client address's share of the %w", ErrBudgetExhausted)

// ErrBodyTimeout is returned by the body reader when the body did not
// arrive within the time it was given.
var ErrBodyTimeout = errors.New("request body not received in time")

// firstChunk is the buffer a body starts in; it grows as bytes arrive.
const firstChunk = 512

// After an early 413, what is left of the body is read and thrown away
// before the connection closes, as nginx's lingering_close does: a client
// that writes its whole body before it reads the answer (Python's urllib,
// some PHP curl modes) is otherwise still writing when the gateway closes
// with its bytes unread, the gateway's kernel answers them with a reset,
// and the client's write fails before it ever reads the answer. The bounds
// keep a client from holding the connection with it: lingerBytes in all,
// lingerTime in all, lingerIdle without a byte.
const (
	lingerBytes = 64 << 20
	lingerTime  = 10 * time.Second
	lingerIdle  = 2 * time.Second
)

// aLongTimeAgo is a read deadline that has passed: setting it wakes a
// read blocked on a silent client, at once.
var aLongTimeAgo = time.Unix(1, 0)

// bodyBudget counts the buffer bytes held by bodies of one route that no
// verifier has accepted yet. Until a request is verified it is anybody's,
// so what all such requests can make the process hold together must be
// bounded by the operator, not by the clients' declared lengths; and what
// the requests of one client address hold together is bounded by a share
// of it, so that one sender cannot take all of it from the others.
type bodyBudget struct {
	limit     int64
	perClient int64

	mu       sync.Mutex
	used     int64
	byClient map[string]int64 // only clients holding bytes have an entry
}

func newBodyBudget(limit, perClient int64) *bodyBudget {
	return &bodyBudget{limit: limit, perClient: min(perClient, limit), byClient: map[string]int64{}}
}

// share is client's access to the budget.
func (b *bodyBudget) share(client string) *budgetShare {
	return &budgetShare{budget: b, client: client}
}

// budgetShare takes the bytes of one request's body from its route's
// budget, in the name of the request's client address. A nil share has no
// bound.
type budgetShare struct {
	budget *bodyBudget
	client string
}

// reserve takes n bytes, or returns ErrClientBudgetExhausted or
// ErrBudgetExhausted; it never takes part of n.
func (s *budgetShare) reserve(n int64) error {
	if s == nil {
		return nil
	}
	b := s.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	held := b.byClient[s.client]
	if held+n > b.perClient {
		return ErrClientBudgetExhausted
	}
	if b.used+n > b.limit {
		return ErrBudgetExhausted
	}
	b.used += n
	b.byClient[s.client] = held + n
	return nil
}

func (s *budgetShare) release(n int64) {
	if s == nil || n == 0 {
		return
	}
	b := s.budget
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if held := b.byClient[s.client] - n; held > 0 {
		b.byClient[s.client] = held
	} else {
		delete(b.byClient, s.client)
	}
}

// clientKey is what a client address's share is counted under: an IPv4
// address, or the /64 of an IPv6 one, since a single host commonly has a
// whole /64 to pick addresses from. An address that does not parse (a
// Unix socket's) is its own key.
func clientKey(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return ip.String()
	}
	prefix, _ := ip.Prefix(64)
	return prefix.String()
}

// readTimer ends the reading of a request body when its time is up. It
// never sets a read deadline ahead of time, which would replace a sooner
// one of the server's (Caddy's read_body): when the time is up it sets the
// connection's read deadline in the past, which wakes a read blocked on a
// silent client at once, and it fails every read through timed from then
// on, since a wrapper of Caddy's may set a deadline of its own before each
// read.
type readTimer struct {
	rc    *http.ResponseController
	timer *time.Timer
	end   time.Time // extend never goes past it

	mu      sync.Mutex
	expired bool
	stopped bool
}

// startReadTimer starts the time of the reads through w's connection: d
// from now, and never past end if end is not zero.
func startReadTimer(w http.ResponseWriter, d time.Duration, end time.Time) *readTimer {
	t := &readTimer{rc: http.NewResponseController(w), end: end}
	t.timer = time.AfterFunc(t.bounded(d), t.expire)
	return t
}

func (t *readTimer) bounded(d time.Duration) time.Duration {
	if !t.end.IsZero() {
		d = min(d, time.Until(t.end))
	}
	return d
}

func (t *readTimer) expire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A ResponseController must not be used once the handler has
	// returned; stop, which the handler calls before, makes this a no-op.
	if t.stopped || t.expired {
		return
	}
	t.expired = true
	// Where the connection takes no deadline, a blocked read goes on until
	// the server's own timeouts end it; the next read fails all the same.
	_ = t.rc.SetReadDeadline(aLongTimeAgo)
}

// extend gives the reads d from now, within end.
func (t *readTimer) extend(d time.Duration) {
	t.timer.Reset(t.bounded(d))
}

func (t *readTimer) isExpired() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expired
}

// stop ends the timer, which no longer touches the connection once stop
// has returned, and reports whether the time was up first. A nil timer
// never expires.
func (t *readTimer) stop() (expired bool) {
	if t == nil {
		return false
	}
	t.timer.Stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	return t.expired
}

// timed is r read within t: once t has expired, a read fails with
// ErrBodyTimeout, as does one that the deadline interrupted.
func (t *readTimer) timed(r io.Reader) io.Reader {
	if t == nil {
		return r
	}
	return &timedReader{r: r, t: t}
}

type timedReader struct {
	r io.Reader
	t *readTimer
}

func (tr *timedReader) Read(p []byte) (int, error) {
	if tr.t.isExpired() {
		return 0, ErrBodyTimeout
	}
	n, err := tr.r.Read(p)
	if err != nil && err != io.EOF && tr.t.isExpired() {
		err = ErrBodyTimeout
	}
	return n, err
}

// readBody reads at most limit bytes; a longer body yields
// *http.MaxBytesError. A declared Content-Length over the limit is refused
// before a byte is read.
//
// The buffer grows as bytes arrive and never past what arrived times two:
// the declared length only caps the growth (so an honest body ends in a
// buffer of its own size), it never sizes an allocation, as a client may
// declare megabytes and send one byte. Every byte of buffer is taken from
// budget first; held is what the caller must give back with
// budget.release once the request is verified, also when err is not nil.
// The reads are bounded by timer, if not nil.
func readBody(r *http.Request, limit int64, budget *budgetShare, timer *readTimer) (body []byte, held int64, err error) {
	if r.ContentLength > limit {
		return nil, 0, &http.MaxBytesError{Limit: limit}
	}
	if r.Body == nil || r.ContentLength == 0 {
		return nil, 0, nil
	}
	src := timer.timed(r.Body)
	for {
		if len(body) == cap(body) {
			if int64(len(body)) > limit {
				return nil, held, &http.MaxBytesError{Limit: limit}
			}
			// One byte over the limit tells an over-limit body from one of
			// exactly the limit; one byte over the declared length leaves
			// room for the read that returns io.EOF.
			size := min(max(2*int64(cap(body)), firstChunk), limit+1)
			if declared := r.ContentLength + 1; declared > int64(cap(body)) {
				size = min(size, declared)
			}
			if err := budget.reserve(size - int64(cap(body))); err != nil {
				return nil, held, err
			}
			held += size - int64(cap(body))
			grown := make([]byte, len(body), size)
			copy(grown, body)
			body = grown
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(body)) > limit {
				return nil, held, &http.MaxBytesError{Limit: limit}
			}
			return body, held, nil
		}
		if err != nil {
			return nil, held, err
		}
	}
}

// closeUnread marks an answer given before the request body was read to its
// end so that HTTP/1 closes the connection after it, gracefully.
//
// Left to itself, net/http first tries to read the rest of the body so as to
// reuse the connection, and Caddy wraps the body, so net/http cannot see how
// much is left: a client that declared more than it sends, or waits for a
// 100 Continue, gets no answer until Caddy's read timeout. Connection: close
// skips that read, but net/http then closes at once, and a client still
// sending its body gets a reset in place of the answer. What makes it
// close the way it does for an over-limit body (FIN, then a moment for the
// client to read the answer; linger makes that moment long enough for a
// client that sends all its body first) is the signal of http.MaxBytesReader, which
// reaches net/http's own ResponseWriter only, beneath Caddy's wrappers; a
// reader of one byte past a limit of zero sends it without touching the
// request body. HTTP/2 resets just the stream on its own, and a Connection
// header there would tear down every other stream of the connection.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		return
	}
	w.Header().Set("Connection", "close")
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	_, _ = http.MaxBytesReader(w, io.NopCloser(strings.NewReader("-")), 0).Read(make([]byte, 1))
}

// linger flushes an answer given before the request body was read to its
// end, then reads and throws away what is left of the body, within
// lingerBytes, lingerTime and lingerIdle, so that a client that writes its
// whole body before it reads finds the answer: closing with its bytes
// still arriving would reset the connection under its write. The answer
// is on its way before the first byte is thrown away, so a client that
// declared more than it sends has it at once. asked says whether the body
// was read at all: a client waiting for a 100 Continue that was never
// sent has no body coming. A body declared longer than lingerBytes could
// not end before the close, so it is not read. HTTP/2 and HTTP/3 end just
// the stream, without a reset of the connection. Call it after closeUnread
// and the answer.
func linger(w http.ResponseWriter, r *http.Request, asked bool) {
	if r.ProtoMajor != 1 || r.Body == nil || r.Body == http.NoBody || r.ContentLength > lingerBytes {
		return
	}
	if !asked && httpguts.HeaderValuesContainsToken(r.Header["Expect"], "100-continue") {
		return
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		return
	}
	t := startReadTimer(w, lingerIdle, time.Now().Add(lingerTime))
	defer t.stop()
	_, _ = io.CopyN(io.Discard, &lingerReader{r: t.timed(r.Body), t: t}, lingerBytes)
}

// lingerReader gives the reads lingerIdle more after each that has bytes.
type lingerReader struct {
	r io.Reader
	t *readTimer
}

func (lr *lingerReader) Read(p []byte) (int, error) {
	n, err := lr.r.Read(p)
	if n > 0 {
		lr.t.extend(lingerIdle)
	}
	return n, err
}
