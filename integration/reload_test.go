package integration

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testcaddy"
	"github.com/webhookgw/caddy-webhook-gateway/internal/testwait"
)

// During a reload there is a moment when the new config has provisioned
// its handlers and the old one still serves: a response the old config
// writes then asks the client to close its connection, so the client does
// not send its next request on a connection the old server is about to
// close. Outside that moment, and when the new config fails to load,
// keep-alive is untouched.
//
// The moment is held open by a new config whose second route waits on a
// database that accepts connections and never answers: its first route
// has provisioned, the old config still runs, and when the database hangs
// up the new config fails and the old one stays.
func TestReloadAnswersOldConnectionsWithClose(t *testing.T) {
	// The backend holds the second event it gets until released.
	var n atomic.Int32
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n.Add(1) == 2 {
			arrived <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer be.Close()

	silentDB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialed := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silentDB.Accept()
			if err != nil {
				return
			}
			dialed <- c
		}
	}()

	route := `
	route /hooks/usaepay {
		webhook_gateway usaepay {
			store_dir {{DIR}}/store
			deliver sync
			auth hmac {env.TEST_SIG_KEY}
		}
		reverse_proxy ` + strings.TrimPrefix(be.URL, "http://") + `
	}`
	running := `http://127.0.0.1:{{PORT}} {` + route + `
}
`
	stuck := `http://127.0.0.1:{{PORT}} {` + route + `
	route /pg {
		webhook_gateway usaepay {
			store postgres "postgres://gw@` + silentDB.Addr().String() + `/db?sslmode=disable&connect_timeout=600"
			deliver sync
			auth hmac {env.TEST_SIG_KEY}
		}
		reverse_proxy ` + strings.TrimPrefix(be.URL, "http://") + `
	}
}
`
	gw := testcaddy.New(t, gatewayEnv...)
	gw.Start(running)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	send := func() *http.Response {
		t.Helper()
		_, body := freshPaymentEvent(t)
		req, err := http.NewRequest(http.MethodPost, gw.BaseURL()+"/hooks/usaepay", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = signedHeader(body)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("answer %d", resp.StatusCode)
		}
		return resp
	}
	if resp := send(); resp.Close {
		t.Fatal("a response outside any reload asked to close the connection")
	}

	held := make(chan *http.Response, 1)
	go func() { held <- send() }()
	waitChan(t, arrived, "the held request at the backend")

	var wg sync.WaitGroup
	wg.Add(1)
	reloaded := make(chan error, 1)
	go func() {
		defer wg.Done()
		reloaded <- gw.Reload(stuck)
	}()
	defer wg.Wait()
	// The Caddyfile puts the longer path first, and routes provision in
	// order: once the database is dialed, the new config's first route has
	// joined.
	conn := waitChan(t, dialed, "the new config dialing its database")
	close(release)
	if resp := <-held; !resp.Close {
		t.Fatal("the old config answered without Connection: close while a new config was loading")
	}

	_ = silentDB.Close()
	_ = conn.Close()
	if err := <-reloaded; err == nil {
		t.Fatal("a config whose database hung up loaded")
	}
	if resp := send(); resp.Close {
		t.Fatal("the running config still asks to close connections after the new config failed to load")
	}
}

// waitChan receives one value from c, failing t if none comes in time.
func waitChan[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testwait.Timeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
