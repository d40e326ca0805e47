// Command rss measures the memory of the Badger store holding many retained
// events: it inserts -n single-event requests (about 1 KB stored each) from
// several writers, then lists and counts them, sampling the process RSS
// throughout. Run it as its own process, so nothing else counts:
//
//	go run ./bench/rss -n 1000000
//	GOMEMLIMIT=200MiB go run ./bench/rss -n 1000000
//
// VmRSS includes file pages Badger maps (SST and log files); those are page
// cache the kernel reclaims under pressure, so RssAnon (the Go heap and
// Badger's memtables and caches) is the figure to hold against a budget.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
	"github.com/webhookgw/caddy-webhook-gateway/store/badger"
)

func main() {
	n := flag.Int("n", 1_000_000, "events to insert")
	writers := flag.Int("writers", 8, "concurrent writers")
	dir := flag.String("dir", "", "store directory (default: a new temporary directory, removed afterwards)")
	durable := flag.Bool("durable", false, "durable inserts (group commit); slower, same memory")
	cache := flag.Int("cache", 0, "dedup LRU size (0: store default)")
	memtable := flag.Int64("memtable", 0, "memtable size in MiB (0: store default)")
	baseTable := flag.Int64("basetable", 0, "SST table size in KiB (0: store default)")
	compression := flag.String("compression", "", "SST compression: snappy, zstd or none (default: store default)")
	idle := flag.Duration("idle", 20*time.Second, "idle time before the last measurement (compactions settle, Badger frees pooled buffers)")
	heapProfile := flag.String("heapprofile", "", "write a heap profile here after inserting")
	flag.Parse()

	if *dir == "" {
		d, err := os.MkdirTemp("", "rsscheck-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	s, err := badger.Open(*dir, badger.Options{CacheSize: *cache, MemTableSize: *memtable << 20, Compression: *compression, BaseTableSize: *baseTable << 10})
	if err != nil {
		log.Fatal(err)
	}

	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := procStatus()["VmRSS"]; kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	event, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "source": "/usaepay", "type": "transaction.sale.success",
		"subject": "1nftvzx7xtcggm3", "time": "2021-04-07T15:14:26Z", "datacontenttype": "application/json",
		"data": map[string]any{
			"merchant": map[string]string{"merch_key": "7qwnw4j2kmqvrb3"},
			"object":   map[string]string{"type": "transaction", "key": "1nftvzx7xtcggm3", "status": "Approved", "amount": "10.00"},
		},
		"provider": "usaepay",
	})
	body := []byte(`{"type":"event","event_type":"transaction.sale.success","event_triggered":"2021-04-07 15:14:26","event_id":"%064d","event_body":{"object":{"type":"transaction","key":"1nftvzx7xtcggm3"}}}`)

	ctx := context.Background()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(*n) {
					return
				}
				st := store.StatusDelivered
				if i%10 == 0 {
					st = store.StatusPending
				}
				r := &store.Record{
					Source: "/usaepay", ID: fmt.Sprintf("%064x", i), Provider: "usaepay",
					Type: "transaction.sale.success", Status: st, Event: event,
					Headers:   map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"USAePay"}},
					Retention: 72 * time.Hour,
				}
				if _, err := s.Insert(ctx, &store.Ingest{RawBody: body, Records: []*store.Record{r}}, *durable); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	insertDur := time.Since(start)
	report("after insert", peak.Load())
	if *heapProfile != "" {
		f, err := os.Create(*heapProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}

	t := time.Now()
	counts, err := s.Counts(ctx)
	if err != nil {
		log.Fatal(err)
	}
	countDur := time.Since(t)
	t = time.Now()
	pages, cursor := 0, ""
	for pages < 50 {
		_, next, err := s.List(ctx, store.Filter{Limit: 1000, Cursor: cursor})
		if err != nil {
			log.Fatal(err)
		}
		pages++
		if cursor = next; cursor == "" {
			break
		}
	}
	listDur := time.Since(t)
	report("after counts and 50 list pages", peak.Load())
	time.Sleep(*idle)
	report(fmt.Sprintf("after %v idle", *idle), peak.Load())
	runtime.GC()
	debug.FreeOSMemory()
	report("after a forced GC", peak.Load())

	// What the GC schedule's payload sweep costs with every record alive:
	// it reads each payload key and its record.
	t = time.Now()
	swept, err := s.SweepPayloads(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sweepDur := time.Since(t)
	report("after a payload sweep", peak.Load())

	close(stop)
	sampler.Wait()
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("flags %v\n", os.Args[1:])
	fmt.Printf("inserted %d in %v (%.0f/s), counts %v in %v, 50×1000 listed in %v, GOMEMLIMIT=%q\n",
		*n, insertDur.Round(time.Millisecond), float64(*n)/insertDur.Seconds(), counts, countDur.Round(time.Millisecond),
		listDur.Round(time.Millisecond), os.Getenv("GOMEMLIMIT"))
	fmt.Printf("payload sweep of %d events in %v (%d orphans)\n", *n, sweepDur.Round(time.Millisecond), swept)
	fmt.Printf("peak VmRSS %d MiB, VmHWM %d MiB, on disk %s\n", peak.Load()>>10, procStatus()["VmHWM"]>>10, du(*dir))
}

func report(when string, peakKB int64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	st := procStatus()
	fmt.Printf("%-32s VmRSS %4d MiB (anon %4d, file %4d) peak %4d MiB | Go heap in use %4d MiB, sys %4d MiB, GC cycles %d\n",
		when, st["VmRSS"]>>10, st["RssAnon"]>>10, st["RssFile"]>>10, peakKB>>10,
		m.HeapInuse>>20, m.Sys>>20, m.NumGC)
}

// procStatus returns the kB fields of /proc/self/status.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 2 && fields[1] == "kB" {
			if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out
}

func du(dir string) string {
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			total += info.Size()
		}
	}
	return fmt.Sprintf("%d MiB (apparent)", total>>20)
}
