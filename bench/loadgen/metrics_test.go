package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestScrapeBatchesSumsOverStores(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`# HELP webhook_gateway_store_sync_batch_writes Durable writes covered by one group sync.
# TYPE webhook_gateway_store_sync_batch_writes histogram
webhook_gateway_store_sync_batch_writes_bucket{store="a",le="1"} 2
webhook_gateway_store_sync_batch_writes_sum{store="a"} 30
webhook_gateway_store_sync_batch_writes_count{store="a"} 4
webhook_gateway_store_sync_batch_writes_sum{store="b"} 10
webhook_gateway_store_sync_batch_writes_count{store="b"} 1
webhook_gateway_store_write_batches_total{store="a"} 5
webhook_gateway_store_batched_writes_total{store="a"} 20
go_goroutines 12
`))
	}))
	defer srv.Close()
	b, err := scrapeBatches(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if b.Syncs != 5 || b.WritesPerSync != 8 || b.WritesPerTxn != 4 {
		t.Fatalf("%+v, want 5 syncs, 8 writes per sync, 4 per transaction", b)
	}
}
