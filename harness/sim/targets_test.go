package sim

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Requests go to BaseURL and every target in turn, as a round-robin load
// balancer would send them.
func TestTargetsRoundRobin(t *testing.T) {
	stub, first := newStub(t)
	var counts [3]atomic.Int64
	urls := []string{first.URL}
	for i := 1; i < 3; i++ {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			counts[i].Add(1)
			stub.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	const n = 30
	s := run(t, Config{BaseURL: urls[0], Targets: urls[1:], Providers: stub.cfg, Count: n, BurstSize: 1000})
	sent := len(s.Sends())
	others := counts[1].Load() + counts[2].Load()
	if counts[1].Load() == 0 || counts[2].Load() == 0 || others >= int64(sent) {
		t.Fatalf("%d sends; targets got %d and %d", sent, counts[1].Load(), counts[2].Load())
	}
	if stub.bad.Load() != 0 {
		t.Fatalf("%d requests failed authentication", stub.bad.Load())
	}
}
