package alerts

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// receiver is a loopback alert receiver that refuses the first failures
// requests with a 503 and keeps the events it accepts.
type receiver struct {
	mu       sync.Mutex
	failures int
	hold     chan struct{} // when not nil, every request waits on it
	got      []CloudEvent
	requests int
}

func (rv *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rv.hold != nil {
		<-rv.hold
	}
	body, _ := io.ReadAll(r.Body)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.requests++
	if r.Header.Get("Content-Type") != ContentType {
		http.Error(w, "content type", http.StatusUnsupportedMediaType)
		return
	}
	if rv.failures > 0 {
		rv.failures--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var ce CloudEvent
	if err := json.Unmarshal(body, &ce); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rv.got = append(rv.got, ce)
}

func (rv *receiver) events() []CloudEvent {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]CloudEvent(nil), rv.got...)
}

func TestSendRetriesUntilAccepted(t *testing.T) {
	rv := &receiver{failures: 2}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, Source: "/gw-test", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if !s.Send(Event{Type: TypeDestinationPaused, Subject: "orders", Data: map[string]any{"destination": "orders"}}) {
		t.Fatal("Send dropped the first event")
	}
	s.Send(Event{Type: TypeEventDead, Subject: "/usaepay e1"})
	testwait.For(t, "both events accepted", func() bool { return len(rv.events()) == 2 })

	got := rv.events()
	if got[0].Type != TypeDestinationPaused || got[0].Subject != "orders" || got[0].SpecVersion != "1.0" || got[0].Source != "/gw-test" || got[0].ID == "" {
		t.Errorf("first event = %+v", got[0])
	}
	if string(got[0].Data) != `{"destination":"orders"}` {
		t.Errorf("data = %s", got[0].Data)
	}
	if got[1].Type != TypeEventDead {
		t.Errorf("second event type = %s; want them in order", got[1].Type)
	}
	if st := s.Stats(); st.Sent != 2 || st.FailedAttempts != 2 || st.Dropped != 0 {
		t.Errorf("stats = %+v; want 2 sent after 2 failed attempts", st)
	}
}

func TestAttemptsAreBounded(t *testing.T) {
	rv := &receiver{failures: 1 << 30}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Send(Event{Type: TypeLaneParked, Subject: "orders"})
	testwait.For(t, "the event dropped after its attempts", func() bool { return s.Stats().Dropped == 1 })
	if st := s.Stats(); st.FailedAttempts != 3 || st.Sent != 0 {
		t.Errorf("stats = %+v; want 3 failed attempts", st)
	}
}

// TestSendNeverBlocks holds the receiver so that the sender is stuck on
// its first event: Send still returns at once, and what does not fit the
// queue is dropped and counted.
func TestSendNeverBlocks(t *testing.T) {
	rv := &receiver{hold: make(chan struct{})}
	srv := httptest.NewServer(rv)
	defer srv.Close()
	defer close(rv.hold)
	s, err := New(Config{URL: srv.URL, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.Send(Event{Type: TypeEventDead, Subject: "1"})
	// The first event leaves the queue for the request the receiver holds.
	testwait.For(t, "the first event in flight", func() bool { return len(s.queue) == 0 })
	accepted := 0
	for range 5 {
		if s.Send(Event{Type: TypeEventDead, Subject: "x"}) {
			accepted++
		}
	}
	if accepted != 2 || s.Stats().Dropped != 3 {
		t.Errorf("accepted %d, dropped %d of 5 with a queue of 2; want 2 and 3", accepted, s.Stats().Dropped)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := s.Stats().Dropped; d != 6 {
		t.Errorf("dropped %d after Close; want the in-flight and the 2 queued as well (6)", d)
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "/relative", "http://"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(%q) took it", u)
		}
	}
}
