package normalize

import (
	"encoding/json"
	"strings"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
)

// USAePay is the payment gateway's provider name.
const USAePay = "usaepay"

// USAePayEnvelope is the payment gateway's webhook body (REST v2).
type USAePayEnvelope struct {
	// Type is always "event".
	Type string `json:"type" validate:"required,eq=event"`
	// EventType is the event name, e.g. "transaction.sale.success".
	EventType string `json:"event_type" validate:"required,max=256,token"`
	// EventTriggered is schemas.ProviderTimeLayout with no zone.
	EventTriggered string `json:"event_triggered" validate:"providertime"`
	// EventID is 64 hex characters (a SHA-256 in hex).
	EventID string `json:"event_id" validate:"required,hex64"`
	// EventBody holds "merchant" and "object"; object.key is the subject.
	EventBody json.RawMessage `json:"event_body" validate:"required,jsoncontainer"`
}

func init() {
	register(&provider{
		name:     USAePay,
		envelope: `type ("event"), event_type, event_triggered, event_id and event_body`,
		detect: func(env *envelope) claim {
			for _, f := range []string{"event_type", "event_triggered", "event_id", "event_body"} {
				if env.has(f) {
					return claimStrong
				}
			}
			if s, ok := jsonscan.DecodeString(env.get("type")); ok && s == "event" {
				return claimWeak
			}
			return claimNone
		},
		read: (*reader).usaepay,
		eventTypes: []string{
			"cau.submitted",
			"cau.updated_expiration",
			"cau.updated_card",
			"cau.contact_customer",
			"cau.account_closed",
			"cau.created",
			// The card updater's events as the REST v2 sender names them
			// (object type "cardupdate", with original_card).
			"cardupdate.submitted",
			"cardupdate.updated_expiration",
			"cardupdate.updated_card",
			"cardupdate.contact_customer",
			"cardupdate.account_closed",
			"ach.submitted",
			"ach.settled",
			"ach.returned",
			"ach.failed",
			"ach.note_added",
			"ach.voided",
			"product.inventory.ordered",
			"product.inventory.adjusted",
			"transaction.sale.success",
			"transaction.sale.failure",
			"transaction.sale.voided",
			"transaction.sale.captured",
			"transaction.sale.adjusted",
			"transaction.sale.queued",
			"transaction.sale.unvoided",
			"transaction.refund.success",
			"transaction.refund.voided",
			"settlement.batch.success",
			"settlement.batch.failure",
		},
	})
}

// usaepay reads the payment gateway's envelope:
//
//	{"type": "event", "event_type": ..., "event_triggered": "2021-04-07 15:14:26",
//	 "event_id": <64 hex>, "event_body": {"merchant": {...}, "object": {"key": ...}}}
//
// id is event_id in lowercase (hex has no case: an uppercased copy is the
// same event), subject is event_body.object.key, data is event_body.
func (r *reader) usaepay(emit emitFunc) *InputError {
	var env USAePayEnvelope
	var err *InputError
	if env.Type, err = r.str("type", true); err != nil {
		return err
	}
	if env.EventType, err = r.str("event_type", true); err != nil {
		return err
	}
	if env.EventTriggered, err = r.str("event_triggered", true); err != nil {
		return err
	}
	if env.EventID, err = r.str("event_id", true); err != nil {
		return err
	}
	if env.EventBody, err = r.container("event_body", true); err != nil {
		return err
	}
	if err = r.check(&env); err != nil {
		return err
	}
	t, err := r.providerTime("event_triggered", env.EventTriggered)
	if err != nil {
		return err
	}
	if err = r.unique(env.EventBody, "event_body"); err != nil {
		return err
	}
	object := jsonscan.Member(env.EventBody, "object")
	if err = r.unique(object, "event_body.object"); err != nil {
		return err
	}
	subject := subjectOf(jsonscan.Member(object, "key"))
	return stopped(emit(r.event(strings.ToLower(env.EventID), env.EventType, subject, t, env.EventBody), ""))
}
