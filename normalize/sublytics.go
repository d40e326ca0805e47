package normalize

import (
	"encoding/json"

	"github.com/webhookgw/caddy-webhook-gateway/internal/jsonscan"
	"github.com/webhookgw/caddy-webhook-gateway/schemas"
)

// Sublytics is the subscription commerce platform's provider name.
const Sublytics = "sublytics"

// SublyticsEnvelope is the subscription commerce platform's webhook body.
type SublyticsEnvelope struct {
	// WebhookType is the object kind ("order", "transaction", "order_offer",
	// "shipment"); WebhookData holds the object under this key.
	WebhookType string `json:"webhook_type" validate:"required,max=256,token"`
	// WebhookEvent is the event name, e.g. "order_updated".
	WebhookEvent string `json:"webhook_event" validate:"required,max=256,token"`
	// WebhookEventID is the event id: a JSON string in API v1, a JSON number
	// in v2.
	WebhookEventID schemas.FlexibleID `json:"webhook_event_id" validate:"required,max=256,visibleascii"`
	// WebhookEventDate is schemas.ProviderTimeLayout with no zone; empty or
	// schemas.ZeroProviderTime means none.
	WebhookEventDate string `json:"webhook_event_date" validate:"providertime"`
	// WebhookData is the payload object. An array is tolerated because PHP
	// encodes an empty map as [].
	WebhookData json.RawMessage `json:"webhook_data" validate:"required,jsoncontainer"`
}

func init() {
	register(&provider{
		name:     Sublytics,
		envelope: "webhook_type, webhook_event, webhook_event_id, webhook_event_date and webhook_data",
		detect: func(env *envelope) claim {
			for _, f := range []string{"webhook_type", "webhook_event", "webhook_event_id", "webhook_event_date", "webhook_data"} {
				if env.has(f) {
					return claimStrong
				}
			}
			return claimNone
		},
		read:       (*reader).sublytics,
		eventTypes: sublyticsEventTypes,
	})
}

// sublyticsEventTypes are the documented events.
var sublyticsEventTypes = []string{
	"order_updated",
	"order_abandonned", // sic: the provider's spelling
	"transaction_completed",
	"transaction_skipped",
	"transaction_unskipped",
	"order_offer_updated",
	"order_offer_cancelled",
	"shipment_shipped",
	"shipment_cancelled",
	"shipment_fulfilled",
	// Webhooks v2 (fulfillment): the object names itself by shipment_id.
	"shipment_scheduled",
	"shipment_address_updated",
	"shipment_item_updated",
	"shipment_skipped",
	"shipment_error",
	"shipment_rma",
}

// SublyticsObjectTypes maps each documented Sublytics event to its
// webhook_type, the key under webhook_data that holds the object.
var SublyticsObjectTypes = map[string]string{
	"order_updated":            "order",
	"order_abandonned":         "order",
	"transaction_completed":    "transaction",
	"transaction_skipped":      "transaction",
	"transaction_unskipped":    "transaction",
	"order_offer_updated":      "order_offer",
	"order_offer_cancelled":    "order_offer",
	"shipment_shipped":         "shipment",
	"shipment_cancelled":       "shipment",
	"shipment_fulfilled":       "shipment",
	"shipment_scheduled":       "shipment",
	"shipment_address_updated": "shipment",
	"shipment_item_updated":    "shipment",
	"shipment_skipped":         "shipment",
	"shipment_error":           "shipment",
	"shipment_rma":             "shipment",
}

// sublytics reads the subscription commerce envelope:
//
//	{"webhook_type": "order", "webhook_event": "order_updated",
//	 "webhook_event_id": "4806" or 10001, "webhook_event_date": "2021-03-19 18:38:40",
//	 "webhook_data": {"order": {"id": "223827", ...}}}
//
// The provider's examples number events per webhook type (order 2866515,
// order_offer 2613, shipment 10001), and one route may take several types,
// so the id is "<webhook_type>:<webhook_event_id>" and the provider's number
// is kept as providereventid. subject is webhook_data.<webhook_type>.id, or
// its shipment_id (the v2 fulfillment events), or webhook_data.shipment_id;
// data is webhook_data.
func (r *reader) sublytics(emit emitFunc) *InputError {
	var env SublyticsEnvelope
	var err *InputError
	if env.WebhookType, err = r.str("webhook_type", true); err != nil {
		return err
	}
	if env.WebhookEvent, err = r.str("webhook_event", true); err != nil {
		return err
	}
	idRaw := r.env.get("webhook_event_id")
	if idRaw == nil {
		return r.fieldErr("webhook_event_id", -1, "is required")
	}
	if uerr := env.WebhookEventID.UnmarshalJSON(idRaw); uerr != nil {
		return r.fieldErr("webhook_event_id", r.env.offset("webhook_event_id"), "%v, got %s", uerr, describeNumber(idRaw))
	}
	if env.WebhookEventDate, err = r.str("webhook_event_date", true); err != nil {
		return err
	}
	if env.WebhookData, err = r.container("webhook_data", true); err != nil {
		return err
	}
	if err = r.check(&env); err != nil {
		return err
	}
	id := env.WebhookType + ":" + string(env.WebhookEventID)
	if !schemas.IsVisibleASCII(env.WebhookType) || len(id) > schemas.MaxIDLength {
		return r.fieldErr("webhook_type", r.env.offset("webhook_type"),
			"must be visible ASCII and, with webhook_event_id, at most %d characters: the two make the event id", schemas.MaxIDLength-1)
	}
	t, err := r.providerTime("webhook_event_date", env.WebhookEventDate)
	if err != nil {
		return err
	}
	if err = r.unique(env.WebhookData, "webhook_data"); err != nil {
		return err
	}
	object := jsonscan.Member(env.WebhookData, env.WebhookType)
	if err = r.unique(object, "webhook_data."+env.WebhookType); err != nil {
		return err
	}
	subject := subjectOf(jsonscan.Member(object, "id"))
	if subject == "" {
		subject = subjectOf(jsonscan.Member(object, "shipment_id"))
	}
	if subject == "" {
		subject = subjectOf(jsonscan.Member(env.WebhookData, "shipment_id"))
	}
	ev := r.event(id, env.WebhookEvent, subject, t, env.WebhookData)
	ev.ProviderEventID = string(env.WebhookEventID)
	return stopped(emit(ev, ""))
}

// describeNumber names the JSON type of v, quoting a short number so the
// provider sees which spelling was refused.
func describeNumber(v []byte) string {
	if k := jsonscan.Kind(v); k != "number" || len(v) > 32 {
		return k
	}
	return "number " + string(v)
}
