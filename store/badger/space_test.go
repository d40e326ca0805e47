package badger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/testdisk"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

var spaceTestOpts = Options{MinFreeSpace: 16 << 20, SpaceReserve: 8 << 20, GCInterval: -1}

// spaceRecord is an event of about 2 KB that does not compress, so that
// what fills the disk is the events, not the store's overhead.
func spaceRecord(i int) *store.Record {
	r := rec("/pay", fmt.Sprint("s", i), store.StatusPending)
	pad := make([]byte, 1000)
	_, _ = rand.Read(pad)
	r.Event = mustJSON(map[string]string{"id": r.ID, "pad": hex.EncodeToString(pad)})
	return r
}

// Inserting flat out into a small disk ends in ErrNoSpace, not in a crash,
// and every event acknowledged before is still there.
func TestFullDiskRefusesNewEvents(t *testing.T) {
	mnt := testdisk.Tmpfs(t, "64m")
	b, err := Open(filepath.Join(mnt, "db"), spaceTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	// Requests of 16 events each fill the disk in a few hundred inserts
	// rather than thousands; each one is all or nothing, so stored counts
	// exactly the events acknowledged.
	const perRequest = 16
	stored := 0
	for n := 0; stored < 200_000; n++ {
		in := &store.Ingest{RawBody: []byte(strings.Repeat("b", 2000))}
		for i := range perRequest {
			in.Records = append(in.Records, spaceRecord(stored+i))
		}
		_, err := b.Insert(ctx, in, n%4 == 0)
		if errors.Is(err, store.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatalf("insert of events %d to %d: %v", stored, stored+perRequest-1, err)
		}
		stored += perRequest
	}
	t.Logf("stored %d events before ErrNoSpace", stored)
	if stored >= 200_000 {
		t.Fatal("a 64 MiB disk took 200,000 events of 2 KB")
	}
	if !b.Stats().LowOnSpace {
		t.Fatal("refusing events, but Stats says there is space")
	}
	// Stored events are still delivered: a state change goes through.
	c, err := b.Claim(ctx, "o", []string{"/pay"}, time.Now(), time.Minute, 1)
	if err != nil || len(c) != 1 {
		t.Fatalf("claim on a full disk: %v %v", c, err)
	}
	if err := b.RecordAttempt(ctx, "/pay", c[0].Record.ID, "/pay", "o", store.Attempt{Number: 1, At: time.Now(), Status: 200}, store.Delivered()); err != nil {
		t.Fatalf("recording a delivery on a full disk: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(filepath.Join(mnt, "db"), spaceTestOpts)
	if err != nil {
		t.Fatalf("reopening on a full disk: %v", err)
	}
	defer b.Close()
	for i := range stored {
		if _, err := b.Get(ctx, "/pay", fmt.Sprint("s", i)); err != nil {
			t.Fatalf("event %d of %d lost: %v", i, stored, err)
		}
	}
}

// Another process fills the disk: the store releases its reserve, refuses
// new events, keeps delivering, opens again on the full disk, and accepts
// events again by itself once space is back.
func TestFullDiskRecovers(t *testing.T) {
	mnt := testdisk.Tmpfs(t, "64m")
	dir := filepath.Join(mnt, "db")
	b, err := Open(dir, spaceTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 100 {
		mustInsert(t, b, single(spaceRecord(i), "{}"), true)
	}
	if _, err := os.Stat(filepath.Join(dir, reserveFile)); err != nil {
		t.Fatalf("no space reserve with the disk nearly empty: %v", err)
	}
	filler := testdisk.Fill(t, mnt)
	b.space.check()
	if _, err := os.Stat(filepath.Join(dir, reserveFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the reserve was kept on a full disk: %v", err)
	}
	if _, err := b.Insert(ctx, single(spaceRecord(100), "{}"), true); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("insert on a full disk: %v", err)
	}
	if c, err := b.Claim(ctx, "o", []string{"/pay"}, time.Now(), time.Minute, 1); err != nil || len(c) != 1 {
		t.Fatalf("claim on a full disk: %v %v", c, err)
	} else if err := b.RecordAttempt(ctx, "/pay", c[0].Record.ID, "/pay", "o", store.Attempt{Number: 1, At: time.Now(), Status: 503}, store.RetryAt(time.Now())); err != nil {
		t.Fatalf("recording an attempt on a full disk: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart on the full disk comes up refusing new events.
	b, err = Open(dir, spaceTestOpts)
	if err != nil {
		t.Fatalf("opening on a full disk: %v", err)
	}
	defer b.Close()
	if _, err := b.Insert(ctx, single(spaceRecord(100), "{}"), true); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("insert after opening on a full disk: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().LowOnSpace {
		if time.Now().After(deadline) {
			t.Fatal("still refusing events 10s after the disk was freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res := mustInsert(t, b, single(spaceRecord(100), "{}"), true); !res[0].Inserted {
		t.Fatal("not inserted after recovery")
	}
	if _, err := os.Stat(filepath.Join(dir, reserveFile)); err != nil {
		t.Fatalf("the reserve was not allocated again: %v", err)
	}
	for i := range 101 {
		if _, err := b.Get(ctx, "/pay", fmt.Sprint("s", i)); err != nil {
			t.Fatalf("event %d lost: %v", i, err)
		}
	}
}
