package normalize

import "github.com/webhookgw/caddy-webhook-gateway/schemas"

// sublytics reads the subscription commerce envelope:
//
//	{"webhook_type": "order", "webhook_event": "order_updated",
//	 "webhook_event_id": "4806" or 10001, "webhook_event_date": "2021-03-19 18:38:40",
//	 "webhook_data": {"order": {"id": "223827", ...}}}
//
// id is webhook_event_id as text, subject is webhook_data.<webhook_type>.id,
// data is webhook_data.
func (r *reader) sublytics() ([]schemas.Event, *InputError) {
	var env schemas.SublyticsEnvelope
	var err *InputError
	if env.WebhookType, err = r.str(fWebhookType, true); err != nil {
		return nil, err
	}
	if env.WebhookEvent, err = r.str(fWebhookEvent, true); err != nil {
		return nil, err
	}
	idRaw := r.env.val[fWebhookEventID]
	if idRaw == nil {
		return nil, r.fieldErr(fWebhookEventID, -1, "is required")
	}
	if uerr := env.WebhookEventID.UnmarshalJSON(idRaw); uerr != nil {
		return nil, r.fieldErr(fWebhookEventID, r.env.off[fWebhookEventID], "%v, got %s", uerr, describeNumber(idRaw))
	}
	if env.WebhookEventDate, err = r.str(fWebhookEventDate, true); err != nil {
		return nil, err
	}
	if env.WebhookData, err = r.container(fWebhookData, true); err != nil {
		return nil, err
	}
	if err = r.check(&env); err != nil {
		return nil, err
	}
	t, err := r.providerTime(fWebhookEventDate, env.WebhookEventDate)
	if err != nil {
		return nil, err
	}
	subject := subjectOf(member(member(env.WebhookData, env.WebhookType), "id"))
	return []schemas.Event{r.event(string(env.WebhookEventID), env.WebhookEvent, subject, t, clone(env.WebhookData))}, nil
}

// describeNumber names the JSON type of v, quoting a short number so the
// provider sees which spelling was refused.
func describeNumber(v []byte) string {
	if k := jsonKind(v); k != "number" || len(v) > 32 {
		return k
	}
	return "number " + string(v)
}
