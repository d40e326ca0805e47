// Command reload measures what `caddy reload` costs the senders of a running
// gateway: it POSTs signed payment webhooks from several senders for a
// bounded time while it reloads Caddy a given number of times, and counts
// the requests that ended without an answer (a reset or EOF) beside those
// answered.
//
//	go run ./bench/reload -url http://127.0.0.1:8080/hooks/usaepay \
//	    -key "$USAEPAY_SIGNATURE_KEY" -config Caddyfile -caddy bin/caddy \
//	    -admin 127.0.0.1:2019 -c 16 -d 15s -reloads 10 [-fresh]
//
// The route must check only an hmac X-Signature with -key. Each reload
// appends a comment to -config so that Caddy sees a new config. -fresh
// opens a connection per request, as a sender without keep-alive does.
// Loopback only; the run ends after -d (at most a minute) whatever happens.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "", "the gateway route to POST to (loopback)")
	key := flag.String("key", "", "the route's hmac key")
	conc := flag.Int("c", 16, "concurrent senders")
	dur := flag.Duration("d", 15*time.Second, "how long to send (at most 1m)")
	reloads := flag.Int("reloads", 10, "reloads, spread over the run")
	config := flag.String("config", "", "the Caddyfile the gateway runs")
	caddyBin := flag.String("caddy", "bin/caddy", "the caddy binary that runs `caddy reload`")
	admin := flag.String("admin", "127.0.0.1:2019", "Caddy's admin address")
	fresh := flag.Bool("fresh", false, "a new connection for every request")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || !loopback(u.Hostname()) {
		log.Fatalf("-url must be a loopback URL, got %q", *target)
	}
	if *config == "" || *key == "" {
		log.Fatal("-config and -key are required")
	}
	d := min(*dur, time.Minute)

	var answered, refused, reset, eof, other atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{
				Transport: &http.Transport{DisableKeepAlives: *fresh},
				Timeout:   10 * time.Second,
			}
			for ctx.Err() == nil {
				resp, err := client.Do(signedRequest(*target, *key))
				switch {
				case err == nil:
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode < 300 {
						answered.Add(1)
					} else {
						refused.Add(1)
					}
				case strings.Contains(err.Error(), "connection reset"):
					reset.Add(1)
				case errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF"):
					eof.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}

	for i := range *reloads {
		select {
		case <-ctx.Done():
		case <-time.After(d / time.Duration(*reloads+1)):
		}
		if ctx.Err() != nil {
			break
		}
		if err := reload(*caddyBin, *config, *admin, i); err != nil {
			log.Printf("reload %d: %v", i+1, err)
		}
	}
	wg.Wait()
	fmt.Printf("answered 2xx %d, answered otherwise %d, reset %d, EOF %d, other errors %d\n",
		answered.Load(), refused.Load(), reset.Load(), eof.Load(), other.Load())
}

// signedRequest is a payment webhook with a fresh event id, signed as the
// payment gateway signs it.
func signedRequest(target, key string) *http.Request {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	id := hex.EncodeToString(raw)
	body := fmt.Appendf(nil, `{"type":"event","event_type":"transaction.sale.success","event_triggered":%q,"event_id":%q,"event_body":{"object":{"type":"transaction","key":"k%s"}}}`,
		time.Now().UTC().Format("2006-01-02 15:04:05"), id, id[:10])
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature", hex.EncodeToString(mac.Sum(nil)))
	return req
}

// reload appends a comment to the Caddyfile, so that Caddy sees a new
// config, and runs `caddy reload`.
func reload(caddyBin, config, admin string, i int) error {
	f, err := os.OpenFile(config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n# reload %d\n", i+1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out, err := exec.Command(caddyBin, "reload", "--config", config, "--adapter", "caddyfile", "--address", admin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
