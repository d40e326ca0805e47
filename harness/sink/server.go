package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// ControlPrefix is the path under which a running sink reports what it
// received, so an emitter in another process can build its report. Every
// other path receives deliveries.
const ControlPrefix = "/_harness/"

// Snapshot is what a sink reports at ControlPrefix + "deliveries".
type Snapshot struct {
	Stats      Stats       `json:"stats"`
	Deliveries []Delivery  `json:"deliveries"`
	Rejections []Rejection `json:"rejections"`
}

// Snapshot returns the sink's current state.
func (s *Sink) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		Stats:      s.stats,
		Deliveries: append([]Delivery(nil), s.deliveries...),
		Rejections: append([]Rejection(nil), s.rejections...),
	}
}

// Handler serves deliveries on every path and the control endpoints under
// ControlPrefix: GET deliveries (Snapshot), GET stats, POST reset.
func (s *Sink) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ControlPrefix+"deliveries", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Snapshot())
	})
	mux.HandleFunc("GET "+ControlPrefix+"stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("POST "+ControlPrefix+"reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", s)
	return mux
}

// Server is a Sink listening on a TCP address.
type Server struct {
	// Sink is the handler's state.
	Sink *Sink
	// URL is the base URL deliveries go to, e.g. "http://127.0.0.1:40123".
	URL string
	srv *http.Server
	// done closes when Serve returns; serveErr is its error.
	done     chan struct{}
	serveErr error
}

// Listen starts serving s.Handler on addr; an empty addr, or one without a
// host, binds the loopback interface only.
func Listen(addr string, s *Sink) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: listen: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	sv := &Server{Sink: s, URL: "http://" + ln.Addr().String(), srv: srv, done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			sv.serveErr = err
		}
	}()
	return sv, nil
}

// Addr is the listening address.
func (sv *Server) Addr() string { return strings.TrimPrefix(sv.URL, "http://") }

// Shutdown stops accepting deliveries and waits for those in flight until
// ctx ends.
func (sv *Server) Shutdown(ctx context.Context) error {
	err := sv.srv.Shutdown(ctx)
	<-sv.done
	if err == nil {
		err = sv.serveErr
	}
	return err
}

// Close stops the server at once.
func (sv *Server) Close() error {
	err := sv.srv.Close()
	<-sv.done
	if err == nil {
		err = sv.serveErr
	}
	return err
}

// Fetch reads the Snapshot of a sink running elsewhere, given its base URL.
func Fetch(ctx context.Context, baseURL string) (*Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+ControlPrefix+"deliveries", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sink: fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sink: fetch: %s", resp.Status)
	}
	var snap Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("sink: fetch: %w", err)
	}
	return &snap, nil
}
