// Command backend is the merchant backend of the load benchmark: it answers
// every POST with 200 and counts what it received, so that the benchmark can
// tell when async delivery has caught up with the acknowledgements.
//
//	GET  /count  {"requests": N, "unique": U, "bytes": B}
//	POST /reset  zero the counters
//	any other    read the body, count it, answer 200
//
// unique counts distinct (path, Idempotency-Key) pairs (the gateway sets
// one key per event, and an at-least-once redelivery repeats it; a route
// fanning out to two destinations posting to two paths delivers each event
// once to each); a request without the header counts as unique, so the
// bare reverse_proxy scenario counts too.
//
// It listens on loopback only and prints its address on stdout once ready.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// counter is shared by every request; the key set has its own lock so the
// plain counters stay lock-free.
type counter struct {
	requests atomic.Int64
	bytes    atomic.Int64
	noKey    atomic.Int64

	mu   sync.Mutex
	keys map[string]struct{}
}

func (c *counter) add(key string, n int64) {
	c.requests.Add(1)
	c.bytes.Add(n)
	if key == "" {
		c.noKey.Add(1)
		return
	}
	c.mu.Lock()
	c.keys[key] = struct{}{}
	c.mu.Unlock()
}

func (c *counter) snapshot() map[string]int64 {
	c.mu.Lock()
	keys := int64(len(c.keys))
	c.mu.Unlock()
	return map[string]int64{
		"requests": c.requests.Load(),
		"unique":   keys + c.noKey.Load(),
		"bytes":    c.bytes.Load(),
	}
}

func (c *counter) reset() {
	c.mu.Lock()
	c.keys = map[string]struct{}{}
	c.requests.Store(0)
	c.bytes.Store(0)
	c.noKey.Store(0)
	c.mu.Unlock()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback; port 0 picks a free one)")
	flag.Parse()

	c := &counter{keys: map[string]struct{}{}}
	ok := []byte(`{"status":"ok"}`)
	var exports atomic.Int64 // span exports of the traced scenarios
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.snapshot())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		c.reset()
		exports.Store(0)
		w.WriteHeader(http.StatusNoContent)
	})
	// The traced scenarios export their spans here (OTLP over HTTP); an
	// export is not a delivery, so it is counted apart. An empty body is
	// the protobuf encoding of an export response with nothing rejected.
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		exports.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /traces", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"exports": exports.Load()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			// A cut request was not received: don't count it.
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if key != "" {
			key = r.URL.Path + " " + key
		}
		c.add(key, n)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ok)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	fmt.Println(ln.Addr().String())
	_ = os.Stdout.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
