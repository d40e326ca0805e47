package postgres

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

const (
	// committers is how many group commits of one kind may be in flight at
	// once: while one waits for its WAL flush, the next gathers the
	// requests arriving meanwhile.
	committers = 4
	// commitTimeout bounds one group commit; it is not tied to any one
	// caller, since the group serves them all.
	commitTimeout = 30 * time.Second
)

// grouper gathers concurrent writes of one kind into group commits: each
// committer takes one waiting request, then every other one already
// waiting (up to max by weight), and writes them with one call of write,
// which sends them as one pipelined batch that PostgreSQL runs as one
// implicit transaction: one round trip and one WAL flush for the group.
type grouper[R any] struct {
	reqs   chan *waiting[R] // unbuffered: a request is either taken or refused
	quit   chan struct{}
	wg     sync.WaitGroup
	max    int
	weight func(R) int
	write  func(context.Context, []R) error
	stats  *commitStats
}

// waiting is one caller of a grouper.
type waiting[R any] struct {
	r    R
	err  error
	done chan struct{}
}

// commitStats are the counters behind Store.Stats, shared by the groupers.
type commitStats struct {
	commits, requests atomic.Uint64
	// batches counts commits by requests per commit.
	batches store.BatchHistogram
}

func (c *commitStats) observe(n int) {
	c.commits.Add(1)
	c.requests.Add(uint64(n))
	c.batches.Observe(uint64(n))
}

func newGrouper[R any](stats *commitStats, max int, weight func(R) int, write func(context.Context, []R) error) *grouper[R] {
	g := &grouper[R]{reqs: make(chan *waiting[R]), quit: make(chan struct{}), max: max, weight: weight, write: write, stats: stats}
	for range committers {
		g.wg.Add(1)
		go g.run()
	}
	return g
}

// do writes r in a group commit. An error after r was taken acknowledges
// nothing: the group commits or not without this caller.
func (g *grouper[R]) do(ctx context.Context, closed <-chan struct{}, r R) error {
	w := &waiting[R]{r: r, done: make(chan struct{})}
	select {
	case g.reqs <- w:
	case <-closed:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *grouper[R]) stop() {
	close(g.quit)
	g.wg.Wait()
}

func (g *grouper[R]) run() {
	defer g.wg.Done()
	for {
		var first *waiting[R]
		select {
		case first = <-g.reqs:
		case <-g.quit:
			return
		}
		group := []*waiting[R]{first}
		n := g.weight(first.r)
	gather:
		for n < g.max {
			select {
			case w := <-g.reqs:
				group = append(group, w)
				n += g.weight(w.r)
			default:
				break gather
			}
		}
		g.commit(group)
	}
}

// commit writes a group. If the group fails for anything but the
// connection, each request is tried alone, so one bad request does not fail
// the others.
func (g *grouper[R]) commit(group []*waiting[R]) {
	err := g.try(group)
	if err != nil && len(group) > 1 && !isConnError(err) {
		for _, w := range group {
			w.err = g.try([]*waiting[R]{w})
			close(w.done)
		}
		return
	}
	for _, w := range group {
		w.err = err
		close(w.done)
	}
}

// try writes a group, again after a deadlock with another process's group
// (the server aborts one of the two).
func (g *grouper[R]) try(group []*waiting[R]) error {
	rs := make([]R, len(group))
	for i, w := range group {
		rs[i] = w.r
	}
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		err = g.write(ctx, rs)
		cancel()
		if !isRetryable(err) {
			break
		}
	}
	if err == nil {
		g.stats.observe(len(group))
	}
	return err
}

// isConnError reports whether err is the connection failing rather than a
// statement: retrying the requests one by one would only fail them again.
func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr)
}

// isRetryable reports a deadlock or serialization failure, which the server
// resolves by aborting one transaction that can simply run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
