package normalize

import "github.com/webhookgw/caddy-webhook-gateway/schemas"

// usaepay reads the payment gateway's envelope:
//
//	{"type": "event", "event_type": ..., "event_triggered": "2021-04-07 15:14:26",
//	 "event_id": <64 hex>, "event_body": {"merchant": {...}, "object": {"key": ...}}}
//
// id is event_id, subject is event_body.object.key, data is event_body.
func (r *reader) usaepay() ([]schemas.Event, *InputError) {
	var env schemas.USAePayEnvelope
	var err *InputError
	if env.Type, err = r.str(fType, true); err != nil {
		return nil, err
	}
	if env.EventType, err = r.str(fEventType, true); err != nil {
		return nil, err
	}
	if env.EventTriggered, err = r.str(fEventTriggered, true); err != nil {
		return nil, err
	}
	if env.EventID, err = r.str(fEventID, true); err != nil {
		return nil, err
	}
	if env.EventBody, err = r.container(fEventBody, true); err != nil {
		return nil, err
	}
	if err = r.check(&env); err != nil {
		return nil, err
	}
	t, err := r.providerTime(fEventTriggered, env.EventTriggered)
	if err != nil {
		return nil, err
	}
	subject := subjectOf(member(member(env.EventBody, "object"), "key"))
	return []schemas.Event{r.event(env.EventID, env.EventType, subject, t, clone(env.EventBody))}, nil
}
