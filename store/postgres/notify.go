package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// listener holds one connection in LISTEN on its channel and passes each
// notification to the subscribers. It connects only once someone
// subscribes, and reconnects (after a pause) whenever the connection
// drops, which is also when a database restart is noticed.
type listener struct {
	cc      *pgx.ConnConfig
	channel string
	log     *zap.Logger

	mu      sync.Mutex
	subs    map[int]func(string)
	nextID  int
	started bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// channelSetting is the session setting that names the store's
// notification channel to its server-side functions.
const channelSetting = "webhook_gateway.channel"

// reconnectPause is the wait between two attempts to listen again.
const reconnectPause = time.Second

// channelFor is the notification channel of the store in schema.
// Channels are shared by the whole database, so stores in different schemas
// (several deployments on one database) each get their own, and a process
// is never woken for, or told the sources of, another schema's events.
func channelFor(schema string) string {
	if schema == "" {
		return notifyChannel
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return fmt.Sprintf("%s_%016x", notifyChannel, h.Sum64())
}

func newListener(cc *pgx.ConnConfig, channel string, log *zap.Logger) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{cc: cc.Copy(), channel: channel, log: log, subs: map[int]func(string){}, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

func (l *listener) subscribe(fn func(string)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.nextID
	l.nextID++
	l.subs[id] = fn
	if !l.started {
		l.started = true
		go l.run(l.ctx)
	}
	return func() {
		l.mu.Lock()
		delete(l.subs, id)
		l.mu.Unlock()
	}
}

func (l *listener) stop() {
	l.mu.Lock()
	started := l.started
	l.started = true // no start after stop
	l.mu.Unlock()
	l.cancel()
	if started {
		<-l.done
	}
}

func (l *listener) run(ctx context.Context) {
	defer close(l.done)
	for ctx.Err() == nil {
		if err := l.listen(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("listening for new events; workers fall back to polling until it works again", zap.Error(err))
		}
		// Whatever was notified while the connection was down is found by
		// the workers' next poll; waking them now finds it sooner.
		l.broadcast("")
		select {
		case <-ctx.Done():
		case <-time.After(reconnectPause):
		}
	}
}

func (l *listener) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.broadcast(n.Payload)
	}
}

func (l *listener) broadcast(destination string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, fn := range l.subs {
		fn(destination)
	}
}
