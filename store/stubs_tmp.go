package store

import (
	"context"
	"errors"
	"time"
)

var errTODO = errors.New("not implemented yet")

// Claim implements Store.
func (b *Badger) Claim(ctx context.Context, owner string, sources []string, now time.Time, lease time.Duration, limit int) ([]*Record, error) {
	return nil, errTODO
}

// List implements Store.
func (b *Badger) List(ctx context.Context, f Filter) ([]*Record, string, error) {
	return nil, "", errTODO
}

// Counts implements Store.
func (b *Badger) Counts(ctx context.Context) (map[Status]int, error) { return nil, errTODO }

// Purge implements Store.
func (b *Badger) Purge(ctx context.Context, f Filter) (int, error) { return 0, errTODO }

func (b *Badger) gcLoop(every time.Duration) { defer b.bg.Done(); <-b.stop }
