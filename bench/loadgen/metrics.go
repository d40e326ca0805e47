package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Batches are the store's batch sizes over the gateway process's life (a
// fresh process per measurement), read from its Prometheus metrics after
// the load and the drain.
type Batches struct {
	// WritesPerSync is the group-commit batch size: durable writes per
	// group sync (Badger) or per commit (PostgreSQL).
	WritesPerSync float64 `json:"writes_per_sync,omitempty"`
	Syncs         float64 `json:"syncs,omitempty"`
	// WritesPerTxn is how many writes one Badger transaction gathered.
	WritesPerTxn float64 `json:"writes_per_txn,omitempty"`
}

// scrapeBatches reads the batch sizes from a Prometheus text endpoint,
// summing each metric over its label sets.
func scrapeBatches(ctx context.Context, url string) (*Batches, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			if j := strings.LastIndexByte(line, '}'); j > i {
				rest = strings.TrimSpace(line[j+1:])
				ok = true
			}
		}
		if !ok {
			continue
		}
		value, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		sums[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	b := &Batches{Syncs: sums["webhook_gateway_store_sync_batch_writes_count"]}
	if b.Syncs > 0 {
		b.WritesPerSync = sums["webhook_gateway_store_sync_batch_writes_sum"] / b.Syncs
	}
	if n := sums["webhook_gateway_store_write_batches_total"]; n > 0 {
		b.WritesPerTxn = sums["webhook_gateway_store_batched_writes_total"] / n
	}
	return b, nil
}
