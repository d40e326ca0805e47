package report

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/webhookgw/caddy-webhook-gateway/harness/sim"
	"github.com/webhookgw/caddy-webhook-gateway/harness/sink"
)

// ckey is a content key: 64 hex digits built from a letter.
func ckey(c string) sim.Key {
	return sim.Key{Source: "/openloyalty", ID: strings.Repeat(c, 64), Content: true}
}

// derivedID is an id the gateway could give an event of k.
func derivedID(k sim.Key, n int) string {
	return k.ID[:32] + "-" + strings.Repeat("0", 15) + string(rune('0'+n))
}

func lsend(kind sim.Kind, at time.Duration, status int, window time.Duration, keys ...sim.Key) sim.Send {
	s := send(sim.OpenLoyalty, 0, kind, 1, at, status, keys...)
	s.DedupWindow = window
	return s
}

func ldeliv(k sim.Key, n int, at time.Duration) sink.Delivery {
	return sink.Delivery{Source: k.Source, ID: derivedID(k, n), Provider: sim.OpenLoyalty, Received: t0.Add(at)}
}

const window = 30 * time.Second

func TestContentKeysCountedByWindow(t *testing.T) {
	cases := []struct {
		name       string
		sends      []sim.Send
		deliveries []sink.Delivery
		// lost, doubled, unacked, expected, acked, unexpected
		want [6]int
	}{
		{
			name: "duplicate inside the window is one event, a repeat after it another",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusAccepted, window, ckey("a")),
				lsend(sim.Duplicate, ms(1), http.StatusOK, window, ckey("a")),
				lsend(sim.Redelivery, ms(150), http.StatusOK, window, ckey("a")),
				lsend(sim.Repeat, 40*time.Second, http.StatusAccepted, window, ckey("a")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("a"), 1, ms(20)), ldeliv(ckey("a"), 2, 40*time.Second+ms(20))},
			want:       [6]int{0, 0, 0, 2, 2, 0},
		},
		{
			name: "a duplicate inside the window delivered under a second id is doubled",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusAccepted, window, ckey("b")),
				lsend(sim.Duplicate, ms(1), http.StatusAccepted, window, ckey("b")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("b"), 1, ms(20)), ldeliv(ckey("b"), 2, ms(21))},
			want:       [6]int{0, 1, 0, 1, 1, 0},
		},
		{
			name: "a repeat after the window that never arrives is lost",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusAccepted, window, ckey("c")),
				lsend(sim.Repeat, 40*time.Second, http.StatusOK, window, ckey("c")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("c"), 1, ms(20))},
			want:       [6]int{1, 0, 0, 2, 2, 0},
		},
		{
			name:       "a timed-out send may or may not have been stored",
			sends:      []sim.Send{lsend(sim.Original, 0, 0, window, ckey("d"))},
			deliveries: []sink.Delivery{ldeliv(ckey("d"), 1, ms(900))},
			want:       [6]int{0, 0, 1, 1, 0, 0},
		},
		{
			name: "a rejected send makes no event",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusUnauthorized, window, ckey("e")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("e"), 1, ms(9))},
			want:       [6]int{0, 0, 0, 0, 0, 1},
		},
		{
			name: "with the window off every copy is an event",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusAccepted, 0, ckey("f")),
				lsend(sim.Duplicate, ms(1), http.StatusAccepted, 0, ckey("f")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("f"), 1, ms(20))},
			want:       [6]int{1, 0, 0, 2, 2, 0},
		},
		{
			// 29.997s between the first answer and the second start,
			// 30.007s between the first start and the second answer: the
			// gateway may have seen either side of the window.
			name: "content about one window apart may be one event or two",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusAccepted, window, ckey("g")),
				lsend(sim.Original, window+ms(2)-ms(5), http.StatusOK, window, ckey("g")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("g"), 1, ms(20)), ldeliv(ckey("g"), 2, window+ms(20))},
			want:       [6]int{0, 0, 1, 2, 1, 0},
		},
		{
			name: "one id delivered twice is doubled",
			sends: []sim.Send{
				lsend(sim.Original, 0, http.StatusAccepted, window, ckey("h")),
			},
			deliveries: []sink.Delivery{ldeliv(ckey("h"), 1, ms(20)), ldeliv(ckey("h"), 1, ms(30))},
			want:       [6]int{0, 1, 0, 1, 1, 0},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Build(Input{Sends: c.sends, Deliveries: c.deliveries, HasSink: true})
			got := [6]int{r.Lost, r.Doubled, r.DeliveredUnacked, r.Expected, r.AckedEvents, r.Unexpected}
			if got != c.want {
				t.Fatalf("lost, doubled, unacked, expected, acked, unexpected = %v, want %v\n%s", got, c.want, r.Table())
			}
			if (got[0] == 0 && got[1] == 0 && got[5] == 0) != r.OK() {
				t.Fatalf("OK() = %v\n%s", r.OK(), r.Table())
			}
		})
	}
}

func TestContentKeyProblemsNameTheKey(t *testing.T) {
	k := ckey("c")
	r := Build(Input{
		HasSink: true,
		Sends: []sim.Send{
			lsend(sim.Original, 0, http.StatusAccepted, window, k),
			lsend(sim.Repeat, 40*time.Second, http.StatusAccepted, window, k),
		},
		Deliveries: []sink.Delivery{
			ldeliv(k, 1, ms(20)),
			// An id whose prefix matches nothing sent is unexpected.
			ldeliv(ckey("z"), 1, ms(30)),
		},
	})
	p := r.Problems()
	if !strings.Contains(p, "1 lost (/openloyalty/"+strings.Repeat("c", 32)+"-*)") || r.Unexpected != 1 {
		t.Fatalf("problems %q", p)
	}
	if r.Repeats != 1 || r.Unique != 1 || r.LatencyN != 1 || r.LatencyP50 != ms(20) {
		t.Fatalf("%+v", r.Counts)
	}
}
