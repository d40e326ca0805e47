package normalize

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// OpenLoyalty is the loyalty platform's provider name.
const OpenLoyalty = "openloyalty"

// OpenLoyaltyEnvelope is the loyalty platform's webhook body. There is no
// event id: the gateway derives one from the content.
//
// Data is one JSON object for most types. Some types (the expiring
// notifications) may carry a JSON array of objects, one per customer; the
// normalizer turns each item into its own event.
type OpenLoyaltyEnvelope struct {
	// Type is the event name, e.g. "customer.updated".
	Type string `json:"type" validate:"required,max=256,token"`
	// Data is an object or a non-empty array of objects. Its well-formedness
	// is the JSON decoder's job; the tag checks the shape.
	Data json.RawMessage `json:"data" validate:"required,objects"`
	// CreatedAt is an RFC 3339 date-time with offset, often absent.
	CreatedAt string `json:"createdAt,omitempty" validate:"omitempty,rfc3339"`
}

func init() {
	register(&provider{
		name:     OpenLoyalty,
		envelope: "type, data and optionally createdAt",
		detect: func(env *envelope) claim {
			switch {
			case env.has("data") || env.has("createdAt"):
				return claimMedium
			case env.has("type"):
				if s, ok := jsonscan.DecodeString(env.get("type")); !ok || s != "event" {
					return claimWeak
				}
			}
			return claimNone
		},
		read:       (*reader).openLoyalty,
		derivesIDs: true,
		eventTypes: []string{
			"customer.updated",
			"customer.deleted",
			"customer.registered",
			"customer.deactivated",
			"customer.level_changed_automatically",
			"customer.level_changed",
			"transaction.registered",
			"transaction.assigned_to_customer",
			"account.available_points_amount_changed",
			"customer.bought_campaign",
			"account.expiring_points_notification",
			"account.points_transfer",
			"account.expiring_level_notification",
			"campaign.coupon_expiration",
		},
	})
}

// LoyaltyBatchTypes are the loyalty types whose data the platform may send as
// an array of items. Normalize splits an array for any loyalty type; these
// are the ones a simulator should batch.
var LoyaltyBatchTypes = []string{
	"account.expiring_points_notification",
	"account.expiring_level_notification",
	"campaign.coupon_expiration",
}

// openLoyalty reads the loyalty platform's envelope:
//
//	{"type": "customer.updated", "createdAt": "2020-09-24T14:09:13+02:00",
//	 "data": {"customerId": ...}}
//
// data may also be an array of objects (the expiring notifications come in
// chunks of 1000, expiring coupons all in one POST); each item becomes its
// own event with the envelope's type and time. subject is the item's
// customerId, else transactionId, else accountId.
//
// The platform sends no event id. With a request id (Options.RequestID) the
// event's id is that id ("<id>.<index>" for batch items), and the content
// key is emitted all the same (see Each). Otherwise the id
// is the first 32 hex digits of the item's content key (ContentKey), a '-'
// and 16 random hex digits drawn once per request: identical bodies share
// the key, which a route dedups within its short window, but every accepted
// event has an id of its own, so a backend keying on Idempotency-Key never
// drops a real second update with the same content.
func (r *reader) openLoyalty(emit emitFunc) *InputError {
	var env OpenLoyaltyEnvelope
	var err *InputError
	if env.Type, err = r.str("type", true); err != nil {
		return err
	}
	if env.CreatedAt, err = r.str("createdAt", false); err != nil {
		return err
	}
	data := r.env.get("data")
	if data == nil {
		return r.fieldErr("data", -1, "is required")
	}
	dataOff := r.env.offset("data")
	switch data[0] {
	case '{':
		if err = r.unique(data, "data"); err != nil {
			return err
		}
	case '[':
		if err = r.checkBatch(data, dataOff); err != nil {
			return err
		}
	default:
		return r.fieldErr("data", dataOff, "must be a JSON object or an array of objects, got %s", jsonscan.Kind(data))
	}
	env.Data = data
	if err = r.check(&env); err != nil {
		return err
	}

	t := r.received
	if env.CreatedAt != "" {
		ct, perr := schemas.ParseRFC3339(env.CreatedAt)
		if perr != nil { // only the range can fail after check
			return r.fieldErr("createdAt", r.env.offset("createdAt"), "%v", perr)
		}
		t = ct
	}

	c := canonPool.Get().(*canonical)
	defer canonPool.Put(c)
	var nonce string
	if r.opts.RequestID == "" {
		var b [8]byte
		_, _ = crand.Read(b[:]) // never fails (crypto/rand)
		nonce = hex.EncodeToString(b[:])
	}
	one := func(item []byte, index int) error {
		key := contentKey(c, r.source, env.Type, env.CreatedAt, item)
		var id string
		switch {
		case r.opts.RequestID != "" && data[0] == '{':
			id = normalizeID(r.opts.RequestID)
		case r.opts.RequestID != "":
			id = normalizeID(r.opts.RequestID) + "." + strconv.Itoa(index)
		default:
			id = key[:derivedKeyDigits] + "-" + nonce
		}
		return emit(r.event(id, env.Type, loyaltySubject(item), t, item), key)
	}
	if data[0] == '{' {
		return stopped(one(data, 0))
	}
	var ferr error
	n := 0
	jsonscan.EachItem(data, func(item []byte, _ int) bool {
		ferr = one(item, n)
		n++
		return ferr == nil
	})
	return stopped(ferr)
}

// stopped turns the error of an emit, which Each reports itself, into the
// reader's result.
func stopped(err error) *InputError {
	if err != nil {
		return errStopped
	}
	return nil
}

// errStopped tells Each that emit failed; Each returns emit's own error.
var errStopped = &InputError{Kind: KindField, Reason: "stopped"}

// derivedKeyDigits is how much of the content key a derived id shows.
const derivedKeyDigits = 32

// DerivedFrom reports whether id is a derived id (see Normalize) of the
// content key key, so that a tool holding the sent bodies can match the
// events delivered for them.
func DerivedFrom(id, key string) bool {
	return len(key) >= derivedKeyDigits && len(id) > derivedKeyDigits &&
		id[:derivedKeyDigits] == key[:derivedKeyDigits] && id[derivedKeyDigits] == '-'
}

// checkBatch reports an empty array, too many items, or an item that is not
// an object or repeats a member name, by index, before any event is built.
func (r *reader) checkBatch(data []byte, dataOff int) *InputError {
	limit := r.opts.MaxItems
	if limit == 0 {
		limit = DefaultMaxItems
	}
	var err *InputError
	n := 0
	jsonscan.EachItem(data, func(item []byte, off int) bool {
		path := "data[" + strconv.Itoa(n) + "]"
		switch {
		case n == limit:
			err = &InputError{Kind: KindTooLarge, Provider: r.provider, Field: "data", Offset: -1,
				Reason: fmt.Sprintf("batch has more than %d items, the most this route accepts", limit)}
		case item[0] != '{':
			err = fieldErr(r.provider, path, r.env.body, dataOff+off, "must be a JSON object, got %s", jsonscan.Kind(item))
		default:
			err = uniqueObject(r.provider, r.env.body, dataOff+off, path)
		}
		n++
		return err == nil
	})
	if err == nil && n == 0 {
		err = r.fieldErr("data", dataOff, "must not be an empty array")
	}
	return err
}

// canonical is what a content key hashes, and the scratch space to write
// it.
type canonical struct {
	out   []byte
	canon jsonscan.Canonical
}

// canonPool recycles canonical-JSON buffers: a loyalty batch hashes up to
// a thousand items per request.
var canonPool = sync.Pool{New: func() any { return &canonical{out: make([]byte, 0, 1024)} }}

// contentKey is ContentKey for data known to be valid JSON.
func contentKey(c *canonical, source, typ, createdAt string, data []byte) string {
	c.out = binary.BigEndian.AppendUint64(c.out[:0], uint64(len(source)))
	c.out = append(c.out, source...)
	c.out = binary.BigEndian.AppendUint64(c.out, uint64(len(typ)))
	c.out = append(c.out, typ...)
	c.out = binary.BigEndian.AppendUint64(c.out, uint64(len(createdAt)))
	c.out = append(c.out, createdAt...)
	c.out = c.canon.Append(c.out, data)
	sum := sha256.Sum256(c.out)
	if cap(c.out) > 1<<20 {
		// Do not pin one huge body in the pool.
		c.out, c.canon = make([]byte, 0, 1024), jsonscan.Canonical{}
	}
	return hex.EncodeToString(sum[:])
}

// ContentKey returns the key a loyalty event, which carries no id of its
// own, is deduplicated by within a route's dedup window: the lowercase hex
// SHA-256 of
//
//	len(source) || source || len(eventType) || eventType ||
//	len(createdAt) || createdAt || canonical(data)
//
// where each len is an unsigned 64-bit big-endian byte count, so no two
// different tuples hash the same bytes. source is the event's CloudEvents
// source; eventType is the provider's own type, without the route's prefix;
// createdAt is the envelope's createdAt exactly as sent ("" when absent), so
// the same data at another time is another event; data is one batch item.
//
// canonical(data) is data without insignificant whitespace, object members
// sorted by the bytes of their UTF-8 names, strings re-escaped minimally
// (only '"', '\\' and control characters: \b \f \n \r \t, else \u00xx), and
// numbers exactly as written, so 1.0 and 1 differ. A transport-level repeat
// of the same notification, whatever its key order or whitespace, gets the
// same key.
func ContentKey(source, eventType, createdAt string, data []byte) (string, error) {
	data = jsonscan.TrimWS(data)
	if !json.Valid(data) {
		return "", errors.New("normalize: ContentKey: data is not valid JSON")
	}
	c := canonPool.Get().(*canonical)
	defer canonPool.Put(c)
	return contentKey(c, source, eventType, createdAt, data), nil
}

// loyaltySubject picks customerId, else transactionId, else accountId of
// one item, skipping missing or unusable ones. The walk stops at a usable
// customerId, the usual case, without reading the rest of the item.
func loyaltySubject(item []byte) string {
	var tx, acct []byte
	it := jsonscan.NewObjIter(item)
	for {
		k, v, _, ok := it.Next()
		if !ok {
			break
		}
		switch {
		case jsonscan.KeyIs(k, "customerId"):
			if s := subjectOf(v); s != "" {
				return s
			}
		case jsonscan.KeyIs(k, "transactionId"):
			if tx == nil {
				tx = v
			}
		case jsonscan.KeyIs(k, "accountId"):
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
