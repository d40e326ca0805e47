package badger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Key layout. Every key starts with a one-letter namespace and a NUL so that a
// prefix scan of one namespace never runs into another. Sources may not
// contain NUL, so the NUL after the source is an unambiguous separator: the
// id is everything after it and may contain any byte, "/" included.
//
//	e\x00<source>\x00<id>                      record (see encodeRecordValue)
//	t\x00<time:8><record key>                  listing index, newest last; value: summary
//	s\x00<subject>\x00<time:8><record key>       subject index of a record with a subject; value: summary
//	d\x00<destination>\x00<time:8><source>\x00<id>  due index of a claimable delivery; value: its lane (see encodeDueValue)
//	l\x00<destination>\x00<lane ref><seq:8>     lane index of a laned delivery not yet delivered or skipped; value: record key
//	q\x00<destination>\x00<lane ref>            last sequence number a lane gave (uint64)
//	b\x00<body id:16>                          raw body shared by the records of one batch
//	p\x00<source>\x00<id>                      payload of a single-event record: canonical event and raw body
//	k\x00<source>\x00<dedup key>               dedup entry of a record with a DedupKey (see encodeDedupValue)
//	m\x00format                               the store's format (see format.go)
//
// Subjects may not contain NUL either, so a subject's entries are exactly
// those under its prefix, newest last as in the listing index.
//
// Destinations, like sources, may not contain NUL, so the due index's
// destination, and its source after the time, end at a NUL too. A record
// has one due entry per unordered delivery that is pending or retrying,
// and one for a laned delivery only while it is also its lane's head (see
// writeDeliveryEntries).
//
// Lanes may hold any byte, so a lane ref is the lane prefixed by its
// length (uvarint): a lane's entries are exactly those under its prefix,
// in sequence order, and the first is the lane's head. Deliveries held
// for a sync route get their sequence, and their lane entry, when
// MarkDelivered makes them pending; a dead delivery keeps its entry, which
// parks the lane.
const (
	prefixRecord  = "e\x00"
	prefixTime    = "t\x00"
	prefixSubject = "s\x00"
	prefixDue     = "d\x00"
	prefixBody    = "b\x00"
	prefixPayload = "p\x00"
	prefixDedup   = "k\x00"
	prefixMeta    = "m\x00"
	prefixLane    = "l\x00"
	prefixLaneSeq = "q\x00"
)

func recordKey(source, id string) []byte { return sourceKey(prefixRecord, source, id) }

// sourceKey is prefix, source, NUL, then rest.
func sourceKey(prefix, source, rest string) []byte {
	k := make([]byte, 0, len(prefix)+len(source)+1+len(rest))
	k = append(k, prefix...)
	k = append(k, source...)
	k = append(k, 0)
	return append(k, rest...)
}

// splitRecordKey is the inverse of recordKey.
func splitRecordKey(k []byte) (source, id string, ok bool) {
	if len(k) < len(prefixRecord) || string(k[:len(prefixRecord)]) != prefixRecord {
		return "", "", false
	}
	rest := k[len(prefixRecord):]
	for i, c := range rest {
		if c == 0 {
			return string(rest[:i]), string(rest[i+1:]), true
		}
	}
	return "", "", false
}

// encTime maps a time to 8 bytes whose byte order is the time order. The zero
// time sorts first, which makes a pending record with no NextAttemptAt due
// immediately. Times outside what UnixNano can represent are clamped.
func encTime(dst []byte, t time.Time) []byte {
	var v uint64
	if !t.IsZero() {
		var n int64
		switch {
		case t.Year() < 1678:
			n = math.MinInt64 + 1
		case t.Year() > 2261:
			n = math.MaxInt64
		default:
			n = t.UnixNano()
		}
		v = uint64(n) ^ (1 << 63)
	}
	return binary.BigEndian.AppendUint64(dst, v)
}

func decTime(b []byte) time.Time {
	v := binary.BigEndian.Uint64(b)
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v^(1<<63)))
}

func timeKey(t time.Time, recKey []byte) []byte {
	k := make([]byte, 0, len(prefixTime)+8+len(recKey))
	k = append(k, prefixTime...)
	k = encTime(k, t)
	return append(k, recKey...)
}

// subjectKeyPrefix is where the subject index entries of subject start.
func subjectKeyPrefix(subject string) []byte {
	k := make([]byte, 0, len(prefixSubject)+len(subject)+1)
	k = append(k, prefixSubject...)
	k = append(k, subject...)
	return append(k, 0)
}

// subjectKey is the subject index entry of the record under recKey; the
// part after the subject's prefix is its listing key's after prefixTime,
// so one cursor positions either scan.
func subjectKey(subject string, t time.Time, recKey []byte) []byte {
	k := subjectKeyPrefix(subject)
	k = encTime(k, t)
	return append(k, recKey...)
}

func dueKeyPrefix(destination string) []byte {
	k := make([]byte, 0, len(prefixDue)+len(destination)+1)
	k = append(k, prefixDue...)
	k = append(k, destination...)
	return append(k, 0)
}

// dueKey is the due index entry of the delivery of (source, id) to destination.
func dueKey(destination, source, id string, due time.Time) []byte {
	k := dueKeyPrefix(destination)
	k = encTime(k, due)
	k = append(k, source...)
	k = append(k, 0)
	return append(k, id...)
}

// dueRecordOf is the record's source and id in the part of a due key after
// the time.
func dueRecordOf(rest []byte) (source, id string, ok bool) {
	for i, c := range rest {
		if c == 0 {
			return string(rest[:i]), string(rest[i+1:]), true
		}
	}
	return "", "", false
}

// deliveryDueKey is the due index entry of r's delivery d at its due time.
func deliveryDueKey(r *store.Record, d *store.Delivery) []byte {
	return dueKey(d.Destination, r.Source, r.ID, dueAt(r, d))
}

// laneRef appends the lane, prefixed by its length, to k.
func laneRef(k []byte, lane string) []byte {
	k = binary.AppendUvarint(k, uint64(len(lane)))
	return append(k, lane...)
}

// laneKeyPrefix is where the lane index entries of (destination, lane)
// start.
func laneKeyPrefix(destination, lane string) []byte {
	k := make([]byte, 0, len(prefixLane)+len(destination)+1+binary.MaxVarintLen64+len(lane)+8)
	k = append(k, prefixLane...)
	k = append(k, destination...)
	k = append(k, 0)
	return laneRef(k, lane)
}

// laneKey is the lane index entry of the delivery of sequence seq.
func laneKey(destination, lane string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(laneKeyPrefix(destination, lane), seq)
}

// laneSeqKey holds the last sequence number (destination, lane) gave.
func laneSeqKey(destination, lane string) []byte {
	k := make([]byte, 0, len(prefixLaneSeq)+len(destination)+1+binary.MaxVarintLen64+len(lane))
	k = append(k, prefixLaneSeq...)
	k = append(k, destination...)
	k = append(k, 0)
	return laneRef(k, lane)
}

// inLane reports whether d holds a lane index entry: a laned, sequenced
// delivery neither delivered nor skipped.
func inLane(d *store.Delivery) bool {
	return d.Lane != "" && d.Sequence > 0 && d.Status != store.StatusDelivered && d.Status != store.StatusSkipped
}

// Due entry values: a laned delivery's lane and sequence, so that Claim's
// scan tells a lane's head from the deliveries waiting behind it without
// reading their records; empty for an unordered delivery.
//
//	uvarint len(lane) | lane | seq:8
func encodeDueValue(d *store.Delivery) []byte {
	if d.Lane == "" || d.Sequence == 0 {
		return nil
	}
	return binary.BigEndian.AppendUint64(laneRef(nil, d.Lane), d.Sequence)
}

func decodeDueValue(v []byte) (lane string, seq uint64, err error) {
	if len(v) == 0 {
		return "", 0, nil
	}
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) != n+8 {
		return "", 0, errors.New("truncated due entry")
	}
	return string(v[w : w+int(n)]), binary.BigEndian.Uint64(v[w+int(n):]), nil
}

func dedupKey(source, key string) []byte { return sourceKey(prefixDedup, source, key) }

// Dedup entry values: the end of the window and the id of the record that
// holds the key. The entry also carries a Badger expiry, so that it goes by
// itself, but Badger's expiry has a granularity of a second: the window is
// decided on the exact end stored here.
//
//	until unix nanos:8 | id
func encodeDedupValue(until time.Time, id string) []byte {
	v := make([]byte, 0, 8+len(id))
	v = binary.BigEndian.AppendUint64(v, uint64(until.UnixNano()))
	return append(v, id...)
}

func decodeDedupValue(v []byte) (until time.Time, id string, err error) {
	if len(v) < 8 {
		return time.Time{}, "", errors.New("truncated dedup entry")
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), string(v[8:]), nil
}

func bodyKey(bodyID []byte) []byte {
	return append([]byte(prefixBody), bodyID...)
}

// dueAt is when Claim may next take a delivery: its next attempt, or for a
// pending delivery without one, its record's receipt (the contract's "due
// at ReceivedAt"). Leaving the receipt out would key every fresh delivery
// at the zero time: the due index would lose its oldest-first order, and
// each write would pull the claim scan's starting mark (dueMarks) back to
// the beginning, so every claim walked the deleted entries of everything
// delivered before it. Leases live in memory (see leaseTable), so a
// claimed delivery keeps its entry and the scan passes over it while the
// lease holds.
func dueAt(r *store.Record, d *store.Delivery) time.Time {
	if d.NextAttemptAt.IsZero() {
		return r.ReceivedAt
	}
	return d.NextAttemptAt
}

// Record values. The record JSON comes first so that listing can decode it
// without touching the body that may follow. The canonical event is framed
// beside the JSON rather than inside it: encoding/json would re-validate and
// compact a json.RawMessage of several kilobytes on every status update.
//
//	version:1 | uvarint len(json) | json | uvarint len(event) | event |
//	body kind:1 | 16-byte body id (bodyRef)
//
// A single-event record (body kind payload) keeps its canonical event and raw
// body in a payload entry of its own instead, written once with the record's
// first state: every later state (claimed, attempted, delivered) then
// rewrites a few hundred bytes rather than the event and body again, which
// for a 12 KB webhook was over 25 KB per update. Its event section is empty.
const recordFormat = 2

const (
	bodyNone    byte = 0
	bodyRef     byte = 2
	bodyPayload byte = 3
)

// payloadKey is the payload entry of the record under recKey.
func payloadKey(recKey []byte) []byte {
	k := make([]byte, 0, len(prefixPayload)+len(recKey)-len(prefixRecord))
	k = append(k, prefixPayload...)
	return append(k, recKey[len(prefixRecord):]...)
}

// recordKeyOfPayload is the inverse of payloadKey.
func recordKeyOfPayload(pKey []byte) []byte {
	k := make([]byte, 0, len(prefixRecord)+len(pKey)-len(prefixPayload))
	k = append(k, prefixRecord...)
	return append(k, pKey[len(prefixPayload):]...)
}

// Payload values:
//
//	uvarint len(event) | event | raw body
func encodePayloadValue(event, body []byte) []byte {
	v := make([]byte, 0, binary.MaxVarintLen64+len(event)+len(body))
	v = binary.AppendUvarint(v, uint64(len(event)))
	v = append(v, event...)
	return append(v, body...)
}

// splitPayloadValue returns the event and body of a payload value, sharing
// its memory.
func splitPayloadValue(v []byte) (event, body []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return nil, nil, errors.New("truncated payload entry")
	}
	return v[w : w+int(n)], v[w+int(n):], nil
}

const bodyIDLen = 16

type storedRecord struct {
	rec      *store.Record
	bodyKind byte
	body     []byte // the id of the shared body entry (bodyRef)
}

func encodeRecordValue(r *store.Record, bodyKind byte, body []byte) ([]byte, error) {
	meta := *r
	meta.Event = nil
	js, err := json.Marshal(&meta)
	if err != nil {
		return nil, fmt.Errorf("encoding record %s %s: %w", r.Source, r.ID, err)
	}
	event := r.Event
	if bodyKind == bodyPayload {
		event = nil // in the payload entry
	}
	v := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(js)+len(event)+1+len(body))
	v = append(v, recordFormat)
	v = binary.AppendUvarint(v, uint64(len(js)))
	v = append(v, js...)
	v = binary.AppendUvarint(v, uint64(len(event)))
	v = append(v, event...)
	v = append(v, bodyKind)
	return append(v, body...), nil
}

// recordParts are the sections of a stored record value, sharing its memory.
type recordParts struct {
	json, event []byte
	bodyKind    byte
	body        []byte
}

// splitRecordValue returns the sections of a stored record without decoding
// anything.
func splitRecordValue(v []byte) (recordParts, error) {
	var p recordParts
	if len(v) < 2 || v[0] != recordFormat {
		return p, errors.New("unknown record format")
	}
	rest := v[1:]
	next := func() ([]byte, bool) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return nil, false
		}
		part := rest[w : w+int(n)]
		rest = rest[w+int(n):]
		return part, true
	}
	var ok bool
	if p.json, ok = next(); !ok {
		return p, errors.New("truncated record")
	}
	if p.event, ok = next(); !ok || len(rest) < 1 {
		return p, errors.New("truncated record")
	}
	p.bodyKind, p.body = rest[0], rest[1:]
	return p, nil
}

func decodeRecordValue(v []byte) (*storedRecord, error) {
	p, err := splitRecordValue(v)
	if err != nil {
		return nil, err
	}
	r := new(store.Record)
	if err := json.Unmarshal(p.json, r); err != nil {
		return nil, fmt.Errorf("decoding record: %w", err)
	}
	r.Event = bytes.Clone(p.event)
	return &storedRecord{rec: r, bodyKind: p.bodyKind, body: p.body}, nil
}

// Shared body values: creation time (so a sweep leaves young bodies alone
// while their batch is still being written), the keys of the records that
// share it (so a sweep can tell when the last one is gone), then the body.
//
//	created unix nanos:8 | uvarint n | n × (uvarint len | record key) | body
func encodeBodyValue(created time.Time, recKeys [][]byte, body []byte) []byte {
	size := 8 + binary.MaxVarintLen64 + len(body)
	for _, k := range recKeys {
		size += binary.MaxVarintLen64 + len(k)
	}
	v := make([]byte, 0, size)
	v = binary.BigEndian.AppendUint64(v, uint64(created.UnixNano()))
	v = binary.AppendUvarint(v, uint64(len(recKeys)))
	for _, k := range recKeys {
		v = binary.AppendUvarint(v, uint64(len(k)))
		v = append(v, k...)
	}
	return append(v, body...)
}

func decodeBodyValue(v []byte) (created time.Time, recKeys [][]byte, body []byte, err error) {
	if len(v) < 9 {
		return time.Time{}, nil, nil, errors.New("truncated body entry")
	}
	created = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	v = v[8:]
	n, w := binary.Uvarint(v)
	if w <= 0 {
		return time.Time{}, nil, nil, errors.New("truncated body entry")
	}
	v = v[w:]
	for range n {
		l, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < l {
			return time.Time{}, nil, nil, errors.New("truncated body entry")
		}
		recKeys = append(recKeys, v[w:w+int(l)])
		v = v[w+int(l):]
	}
	return created, recKeys, v, nil
}

// Listing summaries let List filter and Counts count from the time index
// alone, without reading each record: the record's status, provider and
// type, then each delivery's destination and status (for
// Filter.Destination and DeliveryCounts).
//
//	uvarint-prefixed status | provider | type | uvarint n | n × (destination | status)
type summary struct {
	status     store.Status
	provider   string
	typ        string
	deliveries []deliverySummary
}

type deliverySummary struct {
	destination string
	status      store.Status
}

func encodeSummary(r *store.Record) []byte {
	size := 4*binary.MaxVarintLen64 + len(r.Status) + len(r.Provider) + len(r.Type)
	for i := range r.Deliveries {
		size += 2*binary.MaxVarintLen64 + len(r.Deliveries[i].Destination) + len(r.Deliveries[i].Status)
	}
	v := make([]byte, 0, size)
	put := func(s string) {
		v = binary.AppendUvarint(v, uint64(len(s)))
		v = append(v, s...)
	}
	put(string(r.Status))
	put(r.Provider)
	put(r.Type)
	v = binary.AppendUvarint(v, uint64(len(r.Deliveries)))
	for i := range r.Deliveries {
		put(r.Deliveries[i].Destination)
		put(string(r.Deliveries[i].Status))
	}
	return v
}

func decodeSummary(v []byte) (summary, error) {
	bad := errors.New("truncated index entry")
	next := func() (string, bool) {
		l, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < l {
			return "", false
		}
		s := string(v[w : w+int(l)])
		v = v[w+int(l):]
		return s, true
	}
	var out [3]string
	for i := range out {
		var ok bool
		if out[i], ok = next(); !ok {
			return summary{}, bad
		}
	}
	s := summary{status: store.Status(out[0]), provider: out[1], typ: out[2]}
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)) {
		return summary{}, bad
	}
	v = v[w:]
	s.deliveries = make([]deliverySummary, 0, n)
	for range n {
		dest, ok1 := next()
		st, ok2 := next()
		if !ok1 || !ok2 {
			return summary{}, bad
		}
		s.deliveries = append(s.deliveries, deliverySummary{dest, store.Status(st)})
	}
	return s, nil
}
