package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	mrand "math/rand/v2"
	"strconv"
)

// envelopeHead opens a payment gateway (USAePay REST v2) event. The event id
// comes last in the envelope, as in the provider's own examples, which is
// what lets every body share one prefix: only the final 66 bytes differ.
const envelopeHead = `{"type":"event","event_triggered":"2021-04-07 15:14:26","event_type":"transaction.sale.success",` +
	`"event_body":{"merchant":{"merch_key":"7qwnw4j2kmqvrb3"},"object":{"type":"transaction","key":"` + defaultTxKey + `",` +
	`"amount_detail":{"amount":"5.00","tax":"0.45","tip":"0.00"},"authcode":"538228","result_code":"A","result":"Approved"`

// idField is what follows event_body; the id and the closing `"}` follow it.
const idField = `},"event_id":"`

// idLen is the hex length of a payment gateway event id.
const idLen = 64

// suffixLen is the per-event tail: the hex id, a quote and the closing brace.
const suffixLen = idLen + 2

// minBodySize is the smallest body the envelope allows: without line items
// or notes.
var minBodySize = len(envelopeHead) + len(`}`) + len(idField) + suffixLen

// Payloads produces unique, signed payment gateway events of one size. All
// events share a prefix (envelope and padded event_body); each has its own
// random event id. The HMAC state after the prefix is computed once and
// cloned per event, so signing a 12 KB event costs as much as signing its
// 66-byte tail.
type Payloads struct {
	// prefixes holds one prefix per transaction key (object.key, the
	// event's subject), macs the HMAC state after each.
	prefixes [][]byte
	macs     []hash.Cloner
	rng      *mrand.ChaCha8
}

// Event is one request: the body is Payloads.PrefixOf(e) followed by
// Suffix.
type Event struct {
	Suffix    []byte // the hex id, then `"}`
	Signature string // lowercase hex HMAC-SHA256 of the whole body
	Key       int    // which transaction key (prefix) the event is about
}

// defaultTxKey is the transaction key of every event when there is one.
const defaultTxKey = "1nftvzx7xtcggm3"

// NewPayloads builds the shared prefix so that a whole body is size bytes
// (or the minimum envelope if size is smaller) and keys the signer.
func NewPayloads(key []byte, size int) (*Payloads, error) {
	return NewPayloadsKeys(key, size, 1)
}

// NewPayloadsKeys is NewPayloads with events spread at random over keys
// distinct transaction keys (object.key, so the canonical subject): the
// load of an ordered destination with that many lanes. Every key has the
// same length, so every body still has the same size; keys 1 gives the
// bodies of NewPayloads.
func NewPayloadsKeys(key []byte, size, keys int) (*Payloads, error) {
	if keys < 1 {
		return nil, fmt.Errorf("keys %d: want at least 1", keys)
	}
	p := &Payloads{}
	for i := range keys {
		prefix := buildPrefix(size)
		if keys > 1 {
			k := fmt.Sprintf("lane%011d", i) // as long as defaultTxKey
			prefix = bytes.Replace(prefix, []byte(defaultTxKey), []byte(k), 1)
		}
		mac, ok := hmac.New(sha256.New, key).(hash.Cloner)
		if !ok {
			return nil, fmt.Errorf("crypto/hmac does not implement hash.Cloner")
		}
		mac.Write(prefix)
		p.prefixes, p.macs = append(p.prefixes, prefix), append(p.macs, mac)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	p.rng = mrand.NewChaCha8(seed)
	return p, nil
}

// Prefix returns the bytes every body of the first key starts with.
// Callers must not modify them: requests in flight share them.
func (p *Payloads) Prefix() []byte { return p.prefixes[0] }

// PrefixOf returns the bytes e's body starts with.
func (p *Payloads) PrefixOf(e Event) []byte { return p.prefixes[e.Key] }

// BodySize is the length of every body.
func (p *Payloads) BodySize() int { return len(p.prefixes[0]) + suffixLen }

// Next returns a new event with a random 256-bit id, so ids are unique
// across runs too and spread over the key space as real ids do (a counter
// would hand the store sequential keys). Not safe for concurrent use.
func (p *Payloads) Next() Event {
	var raw [idLen / 2]byte
	_, _ = p.rng.Read(raw[:])
	suffix := make([]byte, suffixLen)
	hex.Encode(suffix, raw[:])
	suffix[idLen], suffix[idLen+1] = '"', '}'

	k := 0
	if len(p.macs) > 1 {
		k = int(p.rng.Uint64() % uint64(len(p.macs)))
	}
	h, err := p.macs[k].Clone()
	if err != nil {
		// Clone of crypto/hmac over crypto/sha256 cannot fail.
		panic(err)
	}
	h.Write(suffix)
	return Event{
		Suffix:    suffix,
		Signature: hex.EncodeToString(h.Sum(nil)),
		Key:       k,
	}
}

// ID is the event's event_id.
func (e Event) ID() string { return string(e.Suffix[:idLen]) }

// Body returns a fresh copy of a whole event body (for tests and tools; the
// load loop sends prefix and suffix without copying).
func (p *Payloads) Body(e Event) []byte {
	b := make([]byte, 0, p.BodySize())
	return append(append(b, p.PrefixOf(e)...), e.Suffix...)
}

// buildPrefix pads event_body.object with line items, then a notes string
// for the last few bytes, so the body lands on size exactly when it can.
// Line items rather than one long string keep the JSON shaped like a real
// transaction, so the gateway's parser does representative work.
func buildPrefix(size int) []byte {
	b := []byte(envelopeHead)
	fixed := len(`}`) + len(idField) + suffixLen
	// A notes field costs its framing even when empty; leave room for it.
	const notesFrame = len(`,"notes":""`)
	const itemsFrame = len(`,"lineitems":[]`)
	room := size - len(b) - fixed - notesFrame - itemsFrame
	var items []byte
	for i := 1; ; i++ {
		item := strconv.AppendInt([]byte(`{"sku":"SKU-`), int64(100000+i), 10)
		item = append(item, `","name":"Widget `...)
		item = strconv.AppendInt(item, int64(i), 10)
		item = append(item, `","description":"Stainless steel widget, boxed","cost":"5.00","qty":"1","taxable":"Y"}`...)
		if i > 1 {
			item = append([]byte{','}, item...)
		}
		if len(items)+len(item) > room {
			break
		}
		items = append(items, item...)
	}
	if len(items) > 0 {
		b = append(b, `,"lineitems":[`...)
		b = append(append(b, items...), ']')
	}
	if n := size - len(b) - fixed - notesFrame; n >= 0 {
		b = append(b, `,"notes":"`...)
		for i := range n {
			b = append(b, 'a'+byte(i%26))
		}
		b = append(b, '"')
	}
	b = append(b, '}')
	return append(b, idField...)
}
