package normalize

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// openLoyalty reads the loyalty platform's envelope:
//
//	{"type": "customer.updated", "createdAt": "2020-09-24T14:09:13+02:00",
//	 "data": {"customerId": ...}}
//
// data may also be an array of objects (the expiring-notification types
// batch up to 1000 customers in one POST); each item becomes its own event,
// with an id derived from its content (see DeriveID) and the envelope's
// type and time. subject is the item's customerId, else transactionId,
// else accountId.
func (r *reader) openLoyalty() ([]schemas.Event, *InputError) {
	var env schemas.OpenLoyaltyEnvelope
	var err *InputError
	if env.Type, err = r.str(fType, true); err != nil {
		return nil, err
	}
	if env.CreatedAt, err = r.str(fCreatedAt, false); err != nil {
		return nil, err
	}
	data := r.env.val[fData]
	if data == nil {
		return nil, r.fieldErr(fData, -1, "is required")
	}
	dataOff := r.env.off[fData]
	switch data[0] {
	case '{':
	case '[':
		if err = r.checkBatch(data, dataOff); err != nil {
			return nil, err
		}
	default:
		return nil, r.fieldErr(fData, dataOff, "must be a JSON object or an array of objects, got %s", jsonKind(data))
	}
	env.Data = data
	if err = r.check(&env); err != nil {
		return nil, err
	}

	t := r.received
	if env.CreatedAt != "" {
		ct, perr := schemas.ParseRFC3339(env.CreatedAt)
		if perr != nil { // only the range can fail after check
			return nil, r.fieldErr(fCreatedAt, r.env.off[fCreatedAt], "%v", perr)
		}
		t = ct
	}

	c := canonPool.Get().(*canonical)
	defer canonPool.Put(c)
	// One copy for the whole batch; items are capped sub-slices of it, so an
	// append to one item's Data cannot overwrite the next.
	owned := clone(data)
	if owned[0] == '{' {
		return []schemas.Event{r.loyaltyEvent(c, env.Type, t, owned)}, nil
	}
	events := make([]schemas.Event, 0, 8)
	jsonscan.EachItem(owned, func(item []byte, _ int) bool {
		events = append(events, r.loyaltyEvent(c, env.Type, t, item[:len(item):len(item)]))
		return true
	})
	return events, nil
}

// checkBatch reports an empty array or an item that is not an object, by
// index, before anything else is built.
func (r *reader) checkBatch(data []byte, dataOff int) *InputError {
	var err *InputError
	n := 0
	jsonscan.EachItem(data, func(item []byte, off int) bool {
		if item[0] != '{' {
			err = fieldErr(r.provider, "data["+strconv.Itoa(n)+"]", r.env.body, dataOff+off, "must be a JSON object, got %s", jsonKind(item))
			return false
		}
		n++
		return true
	})
	if err == nil && n == 0 {
		err = r.fieldErr(fData, dataOff, "must not be an empty array")
	}
	return err
}

func (r *reader) loyaltyEvent(c *canonical, typ string, t time.Time, item []byte) schemas.Event {
	return r.event(deriveID(c, r.source, typ, item), typ, loyaltySubject(item), t, item)
}

// canonPool recycles canonical-JSON buffers: a loyalty batch hashes up to
// a thousand items per request.
var canonPool = sync.Pool{New: func() any { return &canonical{out: make([]byte, 0, 1024)} }}

// deriveID is DeriveID for data known to be valid JSON.
func deriveID(c *canonical, source, typ string, data []byte) string {
	c.out = binary.BigEndian.AppendUint64(c.out[:0], uint64(len(source)))
	c.out = append(c.out, source...)
	c.out = binary.BigEndian.AppendUint64(c.out, uint64(len(typ)))
	c.out = append(c.out, typ...)
	c.value(data, 0)
	sum := sha256.Sum256(c.out)
	if cap(c.out) > 1<<20 {
		c.out = make([]byte, 0, 1024) // do not pin one huge body in the pool
	}
	return hex.EncodeToString(sum[:])
}

// DeriveID returns the id the gateway gives a loyalty event, which carries
// no id of its own: the lowercase hex SHA-256 of
//
//	len(source) || source || len(eventType) || eventType || canonical(data)
//
// where each len is an unsigned 64-bit big-endian byte count, so no two
// different (source, eventType, data) triples hash the same bytes. source is
// the event's CloudEvents source; eventType is the provider's own type,
// without the route's prefix; data is the event's data (one batch item).
//
// canonical(data) is data without insignificant whitespace, object members
// sorted by the bytes of their UTF-8 names (the last of duplicate names
// wins), strings re-escaped minimally (only '"', '\\' and control
// characters: \b \f \n \r \t, else \u00xx), and numbers exactly as written,
// so 1.0 and 1 differ. A provider that re-sends the same notification,
// whatever its key order or whitespace, gets the same id and is
// deduplicated.
func DeriveID(source, eventType string, data []byte) (string, error) {
	data = jsonscan.TrimWS(data)
	if !json.Valid(data) {
		return "", errors.New("normalize: DeriveID: data is not valid JSON")
	}
	c := canonPool.Get().(*canonical)
	defer canonPool.Put(c)
	return deriveID(c, source, eventType, data), nil
}

// loyaltySubject picks customerId, else transactionId, else accountId of
// one item, skipping missing or unusable ones. The walk stops at a usable
// customerId, the usual case, without reading the rest of the item.
func loyaltySubject(item []byte) string {
	var tx, acct []byte
	it := newObjIter(item)
	for {
		k, v, _, ok := it.next()
		if !ok {
			break
		}
		switch {
		case keyIs(k, "customerId"):
			if s := subjectOf(v); s != "" {
				return s
			}
		case keyIs(k, "transactionId"):
			if tx == nil {
				tx = v
			}
		case keyIs(k, "accountId"):
			if acct == nil {
				acct = v
			}
		}
	}
	if s := subjectOf(tx); s != "" {
		return s
	}
	return subjectOf(acct)
}
