package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres"
	"github.com/webhookgw/caddy-webhook-gateway/store/postgres/pgtest"
)

// openShared opens n stores on one new schema at once, as n gateways
// starting together would: the migrations must be applied once, under the
// advisory lock, however the opens interleave.
func openShared(t testing.TB, n int, o postgres.Options) []*postgres.Store {
	t.Helper()
	dsn := pgtest.DSN(t)
	o.DSN, o.Schema = dsn, pgtest.Schema(t, dsn)
	out := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = postgres.Open(context.Background(), o)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { _ = out[i].Close() })
	}
	return out
}

// pending is a single-event request of source with one delivery, to the
// destination named after the source.
func pending(source, id string) *store.Ingest {
	return &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{{
		Source: source, ID: id, Provider: "usaepay", Type: "transaction.sale.success",
		Event:      []byte(`{"specversion":"1.0"}`),
		Deliveries: []store.Delivery{{Destination: source}},
	}}}
}

func TestSeveralProcessesShareOneSchema(t *testing.T) {
	ss := openShared(t, 4, postgres.Options{})
	ctx := context.Background()

	// A reservation made by one process blocks the others.
	r := &store.Record{Source: "/sub", ID: "r1", Provider: "sublytics", Type: "order.created",
		Event: []byte(`{}`), Deliveries: []store.Delivery{{Destination: "/sub", Status: store.StatusReserved}}}
	if res, err := ss[0].Insert(ctx, &store.Ingest{RawBody: []byte(`{}`), Records: []*store.Record{r}}, false); err != nil || !res[0].Inserted {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	res, err := ss[1].Insert(ctx, pending("/sub", "r1"), true)
	if err != nil || res[0].Inserted || res[0].Existing != store.StatusReserved {
		t.Fatalf("another process's reservation did not block: %+v %v", res, err)
	}

	// The same event sent to every process concurrently is stored once.
	var wg sync.WaitGroup
	inserted := make([]bool, 40)
	for i := range inserted {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := ss[i%len(ss)].Insert(ctx, pending("/pay", "same"), true)
			if err != nil {
				t.Error(err)
				return
			}
			inserted[i] = res[0].Inserted
		}()
	}
	wg.Wait()
	n := 0
	for _, ok := range inserted {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d processes stored the same event", n)
	}

	// Claims of every process together take each due event exactly once.
	const events = 200
	in := &store.Ingest{RawBody: []byte(`[]`)}
	for i := range events {
		in.Records = append(in.Records, pending("/bulk", fmt.Sprint("b", i)).Records[0])
	}
	if _, err := ss[2].Insert(ctx, in, true); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	for p, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.Claim(ctx, fmt.Sprint("process-", p), []string{"/bulk"}, time.Now(), time.Minute, 9)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					claimed[c.Record.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != events {
		t.Fatalf("claimed %d of %d events", len(claimed), events)
	}
	for id, k := range claimed {
		if k != 1 {
			t.Fatalf("%s claimed %d times", id, k)
		}
	}
}

// A pending event stored by one process wakes the subscribers of another.
func TestNotifyReachesOtherProcesses(t *testing.T) {
	ss := openShared(t, 2, postgres.Options{})
	woke := make(chan string, 16)
	stop := ss[1].Subscribe(func(source string) {
		select {
		case woke <- source:
		default:
		}
	})
	defer stop()
	// The listener connects in the background: store until it hears one.
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		if _, err := ss[0].Insert(context.Background(), pending("/notify", fmt.Sprint("n", i)), true); err != nil {
			t.Fatal(err)
		}
		select {
		case src := <-woke:
			if src == "" {
				continue // the listener's own wake-up after connecting
			}
			if src != "/notify" {
				t.Fatalf("notified for source %q", src)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification reached the other process")
		}
	}
}

// Stores in two schemas of one database do not wake each other: the first
// notification a subscriber of one gets, after the other's insert and then
// its own, is its own.
func TestNotifyStaysInItsSchema(t *testing.T) {
	mine, other := openShared(t, 1, postgres.Options{})[0], openShared(t, 1, postgres.Options{})[0]
	woke := make(chan string, 64)
	stop := mine.Subscribe(func(source string) {
		select {
		case woke <- source:
		default:
		}
	})
	defer stop()
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		for _, st := range []*postgres.Store{other, mine} {
			src := map[*postgres.Store]string{other: "/other", mine: "/mine"}[st]
			if _, err := st.Insert(context.Background(), pending(src, fmt.Sprint("n", i)), true); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case src := <-woke:
			if src == "" {
				continue // the listener's own wake-up after connecting
			}
			if src != "/mine" {
				t.Fatalf("woken for %q, an event of another schema", src)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification reached the subscriber")
		}
	}
}

// An id may hold any byte, and every JSON document survives byte for byte,
// NUL escapes included (which PostgreSQL's text and jsonb would refuse).
func TestBytesRoundTrip(t *testing.T) {
	s := openShared(t, 1, postgres.Options{})[0]
	ctx := context.Background()
	in := pending("/pay", "id\x00with\xffbytes")
	in.Records[0].Event = []byte(`{"b":1,  "a":"\u0000"}`)
	in.Records[0].Headers = map[string][]string{"X-Odd": {"a\x00b"}}
	if _, err := s.Insert(ctx, in, true); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "/pay", "id\x00with\xffbytes")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Event) != `{"b":1,  "a":"\u0000"}` || got.Headers.Get("X-Odd") != "a\x00b" {
		t.Fatalf("got %s %v", got.Event, got.Headers)
	}
	a := store.Attempt{Number: 1, At: time.Now(), Status: 500, Error: "backend said \x00"}
	if _, err := s.RecordReplay(ctx, "/pay", got.ID, "/pay", a, false); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Get(ctx, "/pay", got.ID); len(got.Deliveries) != 1 || len(got.Deliveries[0].Attempts) != 1 ||
		!strings.Contains(got.Deliveries[0].Attempts[0].Error, "\x00") {
		t.Fatalf("deliveries %+v", got.Deliveries)
	}
}

// Concurrent Inserts share commits; the counters say how many per commit.
// The 1KB-lanes case gives each event one of 1,000 lanes of its destination.
func BenchmarkInsertParallel(b *testing.B) {
	for _, c := range []struct {
		size  int
		lanes int
	}{{1024, 0}, {12288, 0}, {1024, 1000}} {
		name := fmt.Sprint(c.size/1024, "KB")
		if c.lanes > 0 {
			name += "-lanes"
		}
		size := c.size
		b.Run(name, func(b *testing.B) {
			s := openShared(b, 1, postgres.Options{})[0]
			body := []byte(strings.Repeat(`{"k":"v"},`, size/10))
			b.SetParallelism(32) // 32 × GOMAXPROCS concurrent senders
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					in := pending("/bench", fmt.Sprint("e", i))
					in.RawBody, in.Records[0].Event = body, body
					if c.lanes > 0 {
						in.Records[0].Deliveries[0].Lane = fmt.Sprint("k", i%int64(c.lanes))
					}
					if _, err := s.Insert(context.Background(), in, true); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if st := s.Stats(); st.Syncs > 0 {
				b.ReportMetric(float64(st.Waits)/float64(st.Syncs), "inserts/commit")
			}
		})
	}
}

// A schema written by a build from before deliveries had rows of their own
// (its tern version table at any of the versions 1 to 4 of that format) is
// refused at open with store.ErrUnsupportedFormat, not migrated or read.
func TestOpenRefusesAnEarlierFormat(t *testing.T) {
	for _, version := range []int{1, 4} {
		t.Run(fmt.Sprint("version", version), func(t *testing.T) {
			dsn := pgtest.DSN(t)
			schema := pgtest.Schema(t, dsn)
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			sch := pgx.Identifier{schema}.Sanitize()
			for _, q := range []string{
				"CREATE SCHEMA " + sch,
				// What tern made of that format: its version table, and
				// the events table it migrated.
				"CREATE TABLE " + sch + ".webhook_gateway_schema_version (version int4 NOT NULL)",
				fmt.Sprintf("INSERT INTO %s.webhook_gateway_schema_version VALUES (%d)", sch, version),
				"CREATE TABLE " + sch + ".events (source text, id bytea, destination text, PRIMARY KEY (source, id))",
			} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			s, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Schema: schema})
			if err == nil {
				_ = s.Close()
				t.Fatalf("opened a version %d schema", version)
			}
			if !errors.Is(err, store.ErrUnsupportedFormat) || !strings.Contains(err.Error(), fmt.Sprint("version ", version)) {
				t.Fatalf("open of a version %d schema: %v", version, err)
			}
			// Refused, not touched: no table of this format was made.
			var made bool
			if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".deliveries").Scan(&made); err != nil || made {
				t.Fatalf("the refused schema got a deliveries table (%v)", err)
			}
		})
	}
}
