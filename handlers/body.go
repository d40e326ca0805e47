package handlers

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// DefaultMaxUnverified bounds, per route, the bytes held by request bodies
// that are read but not yet verified when none is configured: a dozen
// bodies of the default maximum size at once.
const DefaultMaxUnverified = 64 << 20

// ErrBudgetExhausted is returned by the body reader when the route's budget
// for unverified bodies is spent: the request is answered 503 with a
// Retry-After before more of its body is read.
var ErrBudgetExhausted = errors.New("route's budget for unverified request bodies exhausted")

// firstChunk is the buffer a body starts in; it grows as bytes arrive.
const firstChunk = 512

// bodyBudget counts the buffer bytes held by bodies of one route that no
// verifier has accepted yet. Until a request is verified it is anybody's,
// so what all such requests can make the process hold together must be
// bounded by the operator, not by the clients' declared lengths.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
}

// reserve takes n bytes from the budget, or reports that they are not
// there; it never takes part of n. A nil budget has no bound.
func (b *bodyBudget) reserve(n int64) bool {
	if b == nil {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *bodyBudget) release(n int64) {
	if b == nil {
		return
	}
	b.used.Add(-n)
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
func readBody(r *http.Request, limit int64, budget *bodyBudget) (body []byte, held int64, err error) {
	if r.ContentLength > limit {
		return nil, 0, &http.MaxBytesError{Limit: limit}
	}
	if r.Body == nil || r.ContentLength == 0 {
		return nil, 0, nil
	}
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
			if !budget.reserve(size - int64(cap(body))) {
				return nil, held, ErrBudgetExhausted
			}
			held += size - int64(cap(body))
			grown := make([]byte, len(body), size)
			copy(grown, body)
			body = grown
		}
		n, err := r.Body.Read(body[len(body):cap(body)])
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
// client to read the answer) is the signal of http.MaxBytesReader, which
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
