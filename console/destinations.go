package console

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

// destinationsData is the destinations page.
type destinationsData struct {
	Destinations []ops.DestinationView
	// Paused says what the pause or resume just done did.
	Paused string
	Store  string
}

func (c *Console) destinations(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "destinations", "Destinations")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	res, err := ops.Destinations(r.Context(), t)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &destinationsData{Destinations: res.Destinations, Store: p.Store}
	switch name := r.Form.Get("done"); r.Form.Get("paused") {
	case "true":
		d.Paused = name + " is paused in this gateway: nothing is sent to it until it is resumed."
	case "false":
		d.Paused = name + " is resumed: its backlog goes out at its rate."
	}
	p.Data = d
	c.render(w, r, http.StatusOK, "destinations", "layout", p)
}

// lanesData is the parked lanes page of a destination.
type lanesData struct {
	Lanes    *ops.LanesResponse
	BackLink string
	Store    string
}

func (c *Console) lanes(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "destinations", "Parked lanes")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	res, err := ops.Lanes(r.Context(), t, r.Form.Get("destination"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p.Title = "Parked lanes of " + res.Destination
	p.Data = &lanesData{Lanes: res, BackLink: link("destinations", p.Store), Store: p.Store}
	c.render(w, r, http.StatusOK, "lanes", "layout", p)
}

// skip settles a dead delivery as skipped, then goes back to the event's
// page, or to the lanes page it was asked from.
func (c *Console) skip(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "destinations", "Skip")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	source, id, dest := r.PostForm.Get("source"), r.PostForm.Get("id"), r.PostForm.Get("destination")
	if _, err := ops.Skip(r.Context(), t, source, id, dest); err != nil {
		c.fail(w, r, err)
		return
	}
	back := link("event", p.Store, "source", source, "id", id)
	if r.PostForm.Get("back") == "lanes" {
		back = link("lanes", p.Store, "destination", dest)
	}
	w.Header().Set("Location", back)
	w.WriteHeader(http.StatusSeeOther)
}

// pause holds or lets go a destination in this gateway, then goes back to
// the destinations page.
func (c *Console) pause(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "destinations", "Pause")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	paused, err := strconv.ParseBool(r.PostForm.Get("paused"))
	if err != nil {
		c.fail(w, r, ops.Mark(ops.ErrInvalid, fmt.Errorf("paused %q: want true or false", r.PostForm.Get("paused"))))
		return
	}
	dest := r.PostForm.Get("destination")
	if _, err := ops.Pause(t, dest, paused); err != nil {
		c.fail(w, r, err)
		return
	}
	w.Header().Set("Location", link("destinations", p.Store, "done", dest, "paused", strconv.FormatBool(paused)))
	w.WriteHeader(http.StatusSeeOther)
}
