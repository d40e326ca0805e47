package delivery

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Attributes an ordered destination's deliveries carry in the delivered
// CloudEvent (structured mode), from the CloudEvents extensions of those
// names: sequence numbers a lane's events, partitionkey names the lane.
const (
	AttrSequence     = "sequence"
	AttrPartitionKey = "partitionkey"
)

// sequenceDigits is the width a sequence is written in: the CloudEvents
// sequence extension wants a lexicographically orderable string, so a
// uint64 is zero-padded to its 20 decimal digits and a backend comparing
// two sequences as strings orders them as numbers.
const sequenceDigits = 20

// FormatSequence renders a lane's sequence number as the sequence
// attribute carries it: 20 decimal digits, zero-padded.
func FormatSequence(seq uint64) string {
	return fmt.Sprintf("%0*d", sequenceDigits, seq)
}

// Body is what a delivery sends: the record's canonical event as stored
// for an unordered delivery (byte for byte, as before lanes existed), and
// for a delivery with a lane the same object with the sequence and
// partitionkey attributes appended. The signature covers this body.
func Body(rec *store.Record, d *store.Delivery) []byte {
	if d == nil || d.Lane == "" {
		return rec.Event
	}
	ev := bytes.TrimRight(rec.Event, " \t\r\n")
	if len(ev) < 2 || ev[len(ev)-1] != '}' {
		return rec.Event // not an object: nothing to extend (never from the normalizer)
	}
	key, _ := json.Marshal(d.Lane) // a string always marshals
	out := make([]byte, 0, len(ev)+len(key)+sequenceDigits+40)
	out = append(out, ev[:len(ev)-1]...)
	if len(bytes.TrimRight(ev[:len(ev)-1], " \t\r\n")) > 1 { // not {}
		out = append(out, ',')
	}
	out = append(out, `"`+AttrSequence+`":"`...)
	out = append(out, FormatSequence(d.Sequence)...)
	out = append(out, `","`+AttrPartitionKey+`":`...)
	out = append(out, key...)
	out = append(out, '}')
	return out
}

// withBody is rec with body as its event, for HeaderBuilder.Build, which
// signs the record's event.
func withBody(rec *store.Record, body []byte) *store.Record {
	if len(body) == len(rec.Event) && (len(body) == 0 || &body[0] == &rec.Event[0]) {
		return rec
	}
	c := *rec
	c.Event = body
	return &c
}
