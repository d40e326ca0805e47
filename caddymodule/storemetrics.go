package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Metric names of the store's write path.
const (
	metricStoreSyncs      = "webhook_gateway_store_syncs_total"
	metricStoreSyncBatch  = "webhook_gateway_store_sync_batch_writes"
	metricStoreLowOnSpace = "webhook_gateway_store_low_on_space"
	metricWriteBatches    = "webhook_gateway_store_write_batches_total"
	metricBatchedWrites   = "webhook_gateway_store_batched_writes_total"
)

// statser is a store engine with write-path counters (the badger store).
type statser interface{ Stats() store.Stats }

// storeCollector reports the write path of every live store that keeps
// counters: the group syncs (their rate is the sync rate), how many durable
// writes each covered (the batch size), how many writes each write
// transaction gathered, and whether the store is refusing
// new events for lack of disk space. It reads the counters at scrape time,
// so it costs the write path nothing.
type storeCollector struct {
	reg        *registry
	syncs      *prometheus.Desc
	batch      *prometheus.Desc
	lowOnSpace *prometheus.Desc
	wbatches   *prometheus.Desc
	batched    *prometheus.Desc
}

var _ prometheus.Collector = (*storeCollector)(nil)

func newStoreCollector(reg *registry) *storeCollector {
	return &storeCollector{
		reg: reg,
		syncs: prometheus.NewDesc(metricStoreSyncs,
			"Group syncs (fsyncs of the store's logs) since the store was opened; their rate is the sync rate.",
			[]string{"store"}, nil),
		batch: prometheus.NewDesc(metricStoreSyncBatch,
			"Durable writes covered by one group sync (the group-commit batch size).",
			[]string{"store"}, nil),
		lowOnSpace: prometheus.NewDesc(metricStoreLowOnSpace,
			"1 while the store refuses new events because its disk is below min_free_space.",
			[]string{"store"}, nil),
		wbatches: prometheus.NewDesc(metricWriteBatches,
			"Write transactions that gathered concurrent writes (Badger store).",
			[]string{"store"}, nil),
		batched: prometheus.NewDesc(metricBatchedWrites,
			"Writes carried by those transactions; divided by write_batches_total, the writes per transaction.",
			[]string{"store"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.syncs
	ch <- c.batch
	ch <- c.lowOnSpace
	ch <- c.wbatches
	ch <- c.batched
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	for name, ls := range c.reg.storesByName() {
		s, ok := ls.db.(statser)
		if !ok {
			continue
		}
		st := s.Stats()
		ch <- prometheus.MustNewConstMetric(c.syncs, prometheus.CounterValue, float64(st.Syncs), name)
		buckets := make(map[float64]uint64, len(store.SyncBatchBounds))
		var cumulative uint64
		for i, bound := range store.SyncBatchBounds {
			if i < len(st.SyncBatches) {
				cumulative += st.SyncBatches[i]
			}
			buckets[float64(bound)] = cumulative
		}
		ch <- prometheus.MustNewConstHistogram(c.batch, st.Syncs, float64(st.Waits), buckets, name)
		ch <- prometheus.MustNewConstMetric(c.wbatches, prometheus.CounterValue, float64(st.WriteBatches), name)
		ch <- prometheus.MustNewConstMetric(c.batched, prometheus.CounterValue, float64(st.BatchedWrites), name)
		low := 0.0
		if st.LowOnSpace {
			low = 1
		}
		ch <- prometheus.MustNewConstMetric(c.lowOnSpace, prometheus.GaugeValue, low, name)
	}
}
