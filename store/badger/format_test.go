package badger

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// writeRaw writes entries into a Badger database in dir, as another build
// of the store would have.
func writeRaw(t *testing.T, dir string, entries map[string]string) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		for k, v := range entries {
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A directory written before records named a destination (events, no
// format marker) is refused, not read as empty or without destinations;
// so is one marked with another format, the one state per record of
// destinations-1 among them. An empty one is marked and opens
// again.
func TestOpenRefusesOtherFormats(t *testing.T) {
	old := filepath.Join(t.TempDir(), "db")
	writeRaw(t, old, map[string]string{
		string(recordKey("/pay", "e1")):                                     "\x02{}",
		string(dueKeyPrefix("/pay")) + "\x00\x00\x00\x00\x00\x00\x00\x00e1": "",
	})
	_, err := Open(old, Options{})
	if !errors.Is(err, store.ErrUnsupportedFormat) || !strings.Contains(err.Error(), "before deliveries were bound to destinations") ||
		!strings.Contains(err.Error(), old) {
		t.Fatalf("open of a pre-destination directory: %v", err)
	}
	// Refused again: the open wrote nothing into it.
	if _, err := Open(old, Options{}); !errors.Is(err, store.ErrUnsupportedFormat) {
		t.Fatalf("second open of a pre-destination directory: %v", err)
	}

	for _, format := range []string{"webhook_gateway/some-later-format", "webhook_gateway/destinations-1"} {
		other := filepath.Join(t.TempDir(), "db")
		writeRaw(t, other, map[string]string{string(formatKey): format})
		if _, err := Open(other, Options{}); !errors.Is(err, store.ErrUnsupportedFormat) || !strings.Contains(err.Error(), format) {
			t.Fatalf("open of a directory of format %q: %v", format, err)
		}
	}

	dir := filepath.Join(t.TempDir(), "db")
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopening an empty store: %v", err)
	}
	_ = b.Close()
}
