package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/delivery"
	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// page is what the layout renders around a page's own data.
type page struct {
	Title string
	// Nav is the menu entry to highlight.
	Nav string
	// Store is the store's name carried in every link when several are
	// loaded (empty with just one, so links stay short); Stores lists them
	// for the selector.
	Store  string
	Stores []string
	// StoreName is the name of the store shown.
	StoreName string
	// Zone is the time zone the page shows times in and reads the
	// filter's times in, ZoneName its name (see zone).
	Zone     *time.Location
	ZoneName string
	// Here is the relative link of the page shown, without tz, for the
	// zone switch; empty on pages a POST answered.
	Here string
	Data any
}

var funcs = template.FuncMap{
	"link":       link,
	"when":       when,
	"zoneLink":   zoneLink,
	"deadReason": func(r store.DeadReason) string { return ops.DeadReasonText(r) },
	"latency":    func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() },
	"statuses":   func() []store.Status { return ops.Statuses },
	"count":      func(m map[store.Status]int, s store.Status) int { return m[s] },
}

// when is a time as the console shows it: in the page's zone, with the
// zone's abbreviation (UTC, CET, or an offset such as +04), to the second.
func when(loc *time.Location, t time.Time) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// zoneCookie keeps the operator's choice of zone between pages. It holds
// an IANA zone name, which is no secret; its path is the console's (the
// browser's default for a cookie set without one).
const zoneCookie = "webhook_gateway_tz"

// zone is the time zone a request's page uses: the tz parameter (which the
// zone switch and the filter's forms send, and which is then remembered in
// zoneCookie), else the cookie, else UTC. Only IANA names are taken
// ("UTC", "Europe/Paris"): "Local" would be the server's zone, which the
// operator cannot see.
func zone(w http.ResponseWriter, r *http.Request) (*time.Location, error) {
	if name := r.Form.Get("tz"); name != "" {
		loc, err := loadZone(name)
		if err != nil {
			return nil, ops.Mark(ops.ErrInvalid, err)
		}
		if w != nil {
			http.SetCookie(w, &http.Cookie{Name: zoneCookie, Value: loc.String(), MaxAge: 365 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		return loc, nil
	}
	if c, err := r.Cookie(zoneCookie); err == nil {
		if loc, err := loadZone(c.Value); err == nil {
			return loc, nil
		}
	}
	return time.UTC, nil
}

func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf("time zone %q: name a zone (UTC, Europe/Paris)", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	return loc, nil
}

// here is the relative link of the page r asks for, without its tz, for
// the zone switch. Its filter times, typed in loc, become RFC 3339 times,
// so that they keep their meaning in the zone switched to (which shows
// them in its own time).
func here(r *http.Request, loc *time.Location) string {
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if name == "" {
		name = "./"
	}
	q := r.URL.Query()
	q.Del("tz")
	for _, k := range []string{"from", "to"} {
		if v := q.Get(k); v != "" {
			q.Set(k, formTime(v, loc))
		}
	}
	if len(q) == 0 {
		return name
	}
	return name + "?" + q.Encode()
}

// zoneLink is the page at here shown in zone.
func zoneLink(here, zone string) string {
	sep := "?"
	if strings.Contains(here, "?") {
		sep = "&"
	}
	return here + sep + "tz=" + url.QueryEscape(zone)
}

// link is a relative URL to a console page with query parameters given as
// name, value pairs; empty values are left out, and so is store when it is
// empty.
func link(name, storeName string, kv ...string) string {
	q := url.Values{}
	if storeName != "" {
		q.Set("store", storeName)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		if name == "" {
			return "./"
		}
		return name
	}
	if name == "" {
		name = "./"
	}
	return name + "?" + q.Encode()
}

// target finds the store a request names (param store) and starts the page,
// in the request's zone.
func (c *Console) target(w http.ResponseWriter, r *http.Request, nav, title string) (ops.Target, *page, error) {
	if err := r.ParseForm(); err != nil {
		return ops.Target{}, nil, ops.Mark(ops.ErrInvalid, fmt.Errorf("reading the query: %w", err))
	}
	loc, err := zone(w, r)
	if err != nil {
		return ops.Target{}, nil, err
	}
	names := c.stores.Names()
	name := r.Form.Get("store")
	if name == "" && len(names) > 1 {
		// Show the first; the selector offers the others.
		name = names[0]
	}
	t, err := c.stores.Target(name)
	if err != nil {
		return t, nil, err
	}
	p := &page{Title: title, Nav: nav, StoreName: t.Name, Zone: loc, ZoneName: loc.String()}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		p.Here = here(r, loc)
	}
	if len(names) > 1 {
		p.Store, p.Stores = t.Name, names
	}
	return t, p, nil
}

// overviewData is the overview: counts per status and per source.
type overviewData struct {
	Counts     *ops.CountsResponse
	QueueDepth int
	Dead       int
	BySource   []ops.SourceCount
	Scanned    int
	Complete   bool
	Updated    time.Time
	// Refresh is the period in seconds, for the script.
	Refresh int
	// LiveLink is where the script fetches fresh counts.
	LiveLink string
	Store    string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, name string) {
	t, p, err := c.target(w, r, "overview", "Overview")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	n, err := c.counts.get(r.Context(), t, name != "live")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p.Data = &overviewData{
		Counts:     n.counts,
		QueueDepth: n.counts.Counts[store.StatusPending] + n.counts.Counts[store.StatusRetrying],
		Dead:       n.counts.Counts[store.StatusDead],
		BySource:   n.bySource,
		Scanned:    n.scanned,
		Complete:   n.complete,
		Updated:    n.at,
		Refresh:    max(1, int(c.refresh/time.Second)),
		LiveLink:   link("live", p.Store),
		Store:      p.Store,
	}
	if name == "live" {
		// Only the part that refreshes; the script swaps it in.
		c.render(w, r, http.StatusOK, "overview", "live", p)
		return
	}
	c.render(w, r, http.StatusOK, "overview", "layout", p)
}

// filterForm is the list's filter as the operator typed it.
// Zone is the zone its times were typed in (the page's); links carry it,
// so that a filter means the same times whoever follows them.
type filterForm struct {
	Source, Provider, Type, Subject, Destination, Status, From, To, ID, Zone string
}

func readFilter(v url.Values, p *page) filterForm {
	g := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	f := filterForm{Source: g("source"), Provider: g("provider"), Type: g("type"), Subject: g("subject"), Destination: g("destination"), Status: g("status"), From: inputTime(g("from"), p.Zone), To: inputTime(g("to"), p.Zone), ID: g("id")}
	if f.From != "" || f.To != "" {
		f.Zone = p.ZoneName
	}
	return f
}

// inputTime is an RFC 3339 time (from the zone switch) as the form's
// datetime-local input holds it, in the page's zone; any other value stays
// as typed.
func inputTime(v string, loc *time.Location) string {
	if t, err := time.Parse(time.RFC3339, v); err == nil && loc != nil {
		return t.In(loc).Format("2006-01-02T15:04:05")
	}
	return v
}

// pairs are the filter's query parameters, for links.
func (f filterForm) pairs() []string {
	return []string{"source", f.Source, "provider", f.Provider, "type", f.Type, "subject", f.Subject, "destination", f.Destination, "status", f.Status, "from", f.From, "to", f.To, "tz", f.Zone}
}

// request is the filter in the operations' terms. A time from the form's
// datetime-local input has no zone; the console reads it in the page's
// zone (loc), the one it shows every time in.
func (f filterForm) request(loc *time.Location) ops.FilterRequest {
	return ops.FilterRequest{Source: f.Source, Provider: f.Provider, Type: f.Type, Subject: f.Subject, Destination: f.Destination, Status: f.Status, From: formTime(f.From, loc), To: formTime(f.To, loc)}
}

// empty reports whether the filter selects every event.
func (f filterForm) empty() bool {
	return f.Source == "" && f.Provider == "" && f.Type == "" && f.Subject == "" && f.Destination == "" && f.Status == "" && f.From == "" && f.To == ""
}

func formTime(v string, loc *time.Location) string {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return v // RFC 3339 already, or an error the operations name
}

// eventsData is one page of the list.
type eventsData struct {
	Filter    filterForm
	Events    []ops.EventSummary
	Sources   []string
	Providers []string
	Paged     bool
	// ByID is set for a search by id; Searched names the sources looked in.
	ByID     bool
	Searched []string
	NextLink string
	FirstLink,
	ReplayLink,
	PurgeLink string
	Store string
}

func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "events", "Events")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	ff := readFilter(r.Form, p)
	if ff == (filterForm{Status: string(store.StatusDead)}) {
		p.Nav = "dead"
	}
	d := &eventsData{Filter: ff, Sources: t.Sources, Providers: ops.Providers(), Store: p.Store}
	pairs := ff.pairs()
	d.FirstLink = link("events", p.Store, pairs...)
	d.ReplayLink = link("confirm", p.Store, append([]string{"action", "replay"}, pairs...)...)
	d.PurgeLink = link("confirm", p.Store, append([]string{"action", "purge"}, pairs...)...)
	p.Data = d
	if ff.ID != "" {
		d.ByID = true
		d.Searched = t.Sources
		if ff.Source != "" {
			d.Searched = []string{ff.Source}
		}
		d.Events, err = ops.Find(r.Context(), t, d.Searched, ff.ID)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		c.render(w, r, http.StatusOK, "events", "layout", p)
		return
	}
	fr := ff.request(p.Zone)
	f, err := fr.Filter()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	q := url.Values{"cursor": {r.Form.Get("cursor")}}
	cf, err := ops.QueryFilter(q)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	f.Cursor, f.Limit = cf.Cursor, pageSize
	d.Paged = f.Cursor != ""
	list, err := ops.List(r.Context(), t, f)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d.Events = list.Events
	if list.NextCursor != "" {
		d.NextLink = link("events", p.Store, append(pairs, "cursor", list.NextCursor)...)
	}
	c.render(w, r, http.StatusOK, "events", "layout", p)
}

// header is one header line, its values joined.
type header struct{ Name, Value string }

func headerLines(h http.Header) []header {
	out := make([]header, 0, len(h))
	for name, vs := range h {
		out = append(out, header{name, strings.Join(vs, ", ")})
	}
	slices.SortFunc(out, func(a, b header) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// indentJSON pretty-prints a JSON document, or returns it as it is when it
// is not one.
func indentJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		return string(b)
	}
	return buf.String()
}

// eventData is one event.
type eventData struct {
	View      *ops.EventView
	Summary   ops.EventSummary
	EventJSON string
	Headers   []header
	RawBody   string
	// RawBase64 is set when the raw body is not UTF-8 and is shown in
	// base64.
	RawBase64 bool
	// CannotReplay says why the event cannot be replayed; empty when it
	// can.
	CannotReplay string
	// Replayed is set right after a replay from this page.
	Replayed bool
	Store    string
	ListLink string
	// SubjectLink lists every event about the same subject, of any
	// source; empty when the event has no subject.
	SubjectLink string
	// PurgeLink asks to confirm the purge of this event alone.
	PurgeLink string
	// Deliveries are the event's deliveries, one per destination.
	Deliveries []deliveryData
}

// deliveryData is one delivery of an event on its page.
type deliveryData struct {
	Delivery *store.Delivery
	Summary  ops.DeliverySummary
	// EventsLink lists the events with a delivery to its destination.
	EventsLink string
	// CannotReplay says why it cannot be replayed; empty when it can.
	CannotReplay string
}

func (c *Console) event(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "events", "Event")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	source, id := r.Form.Get("source"), r.Form.Get("id")
	view, err := ops.Show(r.Context(), t, source, id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &eventData{
		View:      view,
		Summary:   ops.Summarize(view.Record),
		EventJSON: indentJSON(view.Event),
		Headers:   headerLines(view.Headers),
		RawBody:   view.RawBody,
		Replayed:  r.Form.Get("replayed") != "",
		Store:     p.Store,
		ListLink:  link("events", p.Store, "source", source),
	}
	if d.Summary.Subject != "" {
		d.SubjectLink = link("events", p.Store, "subject", d.Summary.Subject)
	}
	if view.RawBodyBase64 != "" {
		d.RawBody, d.RawBase64 = view.RawBodyBase64, true
	}
	replayable := 0
	for i := range view.Deliveries {
		del := &view.Deliveries[i]
		dd := deliveryData{Delivery: del, Summary: ops.SummarizeDelivery(del), EventsLink: link("events", p.Store, "destination", del.Destination)}
		if _, err := ops.Replayable(t, del.Destination); err != nil {
			dd.CannotReplay = "Cannot be replayed: " + err.Error()
		} else if del.Status == store.StatusReserved || del.Status == store.StatusHeld || view.Status == store.StatusReserved {
			dd.CannotReplay = "Cannot be replayed now: " + delivery.ErrReserved.Error() + ": wait for its outcome"
		} else {
			replayable++
		}
		d.Deliveries = append(d.Deliveries, dd)
	}
	switch {
	case len(view.Deliveries) == 0:
		d.CannotReplay = "it matched no destination's filter, so it has no delivery"
	case view.Status == store.StatusReserved:
		d.CannotReplay = delivery.ErrReserved.Error() + ": wait for its outcome"
	case replayable == 0:
		d.CannotReplay = strings.TrimPrefix(d.Deliveries[0].CannotReplay, "Cannot be replayed: ")
	}
	// Headed by what the event is about; the id, which names it, below.
	p.Title = view.Type
	if d.Summary.Subject != "" {
		p.Title += " " + d.Summary.Subject
	}
	d.PurgeLink = link("confirm", p.Store, "action", "purge", "source", source, "id", id)
	p.Data = d
	c.render(w, r, http.StatusOK, "event", "layout", p)
}

// preview is one request a dry run would send.
type preview struct {
	Source, ID, URL, Body, Error string
	Headers                      []header
}

// confirmData is the confirmation step of a replay or purge by filter.
type confirmData struct {
	Action string
	Filter filterForm
	// Everything is set for an empty filter, which selects every event.
	Everything bool
	Matched    int
	// Preview is what a replay would do; the requests of its first
	// events only are prepared and shown.
	Preview  *ops.ReplayPreview
	Shown    []preview
	More     int
	Hidden   []header
	BackLink string
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "events", "Confirm")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	action := r.Form.Get("action")
	if action != "replay" && action != "purge" {
		c.fail(w, r, ops.Mark(ops.ErrInvalid, fmt.Errorf("action %q: want replay or purge", action)))
		return
	}
	if source, id := r.Form.Get("source"), r.Form.Get("id"); action == "purge" && id != "" {
		c.confirmPurgeEvent(w, r, t, p, source, id)
		return
	}
	ff := readFilter(r.Form, p)
	fr := ff.request(p.Zone)
	f, limit, err := ops.ActionFilter(&fr, ff.empty())
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &confirmData{Action: action, Filter: ff, Everything: ff.empty(), BackLink: link("events", p.Store, ff.pairs()...)}
	pairs := ff.pairs()
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			d.Hidden = append(d.Hidden, header{pairs[i], pairs[i+1]})
		}
	}
	if d.Everything {
		d.Hidden = append(d.Hidden, header{"all", "true"})
	}
	if p.Store != "" {
		d.Hidden = append(d.Hidden, header{"store", p.Store})
	}
	if action == "replay" {
		p.Title = "Replay events"
		pv, err := ops.PreviewReplay(r.Context(), t, f, "", limit, previewShown)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		d.Preview, d.Matched = pv, pv.Matched
		for _, res := range pv.Requests {
			d.Shown = append(d.Shown, preview{Source: res.Source, ID: res.ID, URL: res.URL, Body: indentJSON(res.Body), Error: res.Error, Headers: headerLines(res.Header)})
		}
		d.More = pv.Matched - len(d.Shown)
	} else {
		p.Title = "Purge events"
		keys, err := ops.Matching(r.Context(), t, f, limit)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		d.Matched = len(keys)
	}
	p.Data = d
	c.render(w, r, http.StatusOK, "confirm", "layout", p)
}

// confirmEventData is the confirmation of one event's purge.
type confirmEventData struct {
	Event    ops.EventSummary
	Hidden   []header
	BackLink string
}

// confirmPurgeEvent asks before one event is purged, naming it as its page
// does.
func (c *Console) confirmPurgeEvent(w http.ResponseWriter, r *http.Request, t ops.Target, p *page, source, id string) {
	view, err := ops.Show(r.Context(), t, source, id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d := &confirmEventData{
		Event:    ops.Summarize(view.Record),
		Hidden:   []header{{"source", source}, {"id", id}},
		BackLink: link("event", p.Store, "source", source, "id", id),
	}
	if p.Store != "" {
		d.Hidden = append(d.Hidden, header{"store", p.Store})
	}
	p.Title = "Purge event"
	p.Data = d
	c.render(w, r, http.StatusOK, "confirm-event", "layout", p)
}

// resultData is the outcome of a replay or purge by filter.
type resultData struct {
	Action   string
	Bulk     *ops.BulkReplayResponse
	Purged   int
	BackLink string
	Store    string
}

func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "events", "Replay")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if source, id := r.PostForm.Get("source"), r.PostForm.Get("id"); id != "" {
		if _, err := ops.Replay(r.Context(), t, source, id, r.PostForm.Get("delivery"), "", false); err != nil {
			c.fail(w, r, err)
			return
		}
		// Back to the event, where the new attempt shows (or to the
		// lanes page a head was replayed from); a reload of that page
		// does not replay again. The Location stays relative
		// (http.Redirect would root it at the request's path, which is
		// not the browser's when Caddy strips a prefix).
		back := link("event", p.Store, "source", source, "id", id, "replayed", "1")
		if dest := r.PostForm.Get("delivery"); r.PostForm.Get("back") == "lanes" {
			back = link("lanes", p.Store, "destination", dest)
		}
		w.Header().Set("Location", back)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	ff := readFilter(r.PostForm, p)
	fr := ff.request(p.Zone)
	f, limit, err := ops.ActionFilter(&fr, r.PostForm.Get("all") == "true")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	res, err := ops.ReplayMatching(r.Context(), t, f, "", limit, false)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p.Title = "Replayed"
	p.Data = &resultData{Action: "replay", Bulk: res, BackLink: link("events", p.Store, ff.pairs()...), Store: p.Store}
	c.render(w, r, http.StatusOK, "result", "layout", p)
}

func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	t, p, err := c.target(w, r, "events", "Purge")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if source, id := r.PostForm.Get("source"), r.PostForm.Get("id"); id != "" {
		res, err := ops.PurgeEvent(r.Context(), t, source, id)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		p.Title = "Purged"
		p.Data = &resultData{Action: "purge", Purged: res.Purged, BackLink: link("events", p.Store, "source", source), Store: p.Store}
		c.render(w, r, http.StatusOK, "result", "layout", p)
		return
	}
	ff := readFilter(r.PostForm, p)
	fr := ff.request(p.Zone)
	f, limit, err := ops.ActionFilter(&fr, r.PostForm.Get("all") == "true")
	if err != nil {
		c.fail(w, r, err)
		return
	}
	res, err := ops.Purge(r.Context(), t, f, limit)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p.Title = "Purged"
	p.Data = &resultData{Action: "purge", Purged: res.Purged, BackLink: link("events", p.Store), Store: p.Store}
	c.render(w, r, http.StatusOK, "result", "layout", p)
}

// errorData is an error page.
type errorData struct {
	Status  int
	Text    string
	Message string
}

// fail answers an operation's error with the status of its kind.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.failStatus(w, r, ops.HTTPStatus(err), err)
}

func (c *Console) failStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		c.logger.Error("console", zap.String("path", r.URL.Path), zap.Error(err))
	}
	c.render(w, r, status, "error", "layout", &page{
		Title: http.StatusText(status),
		Data:  &errorData{Status: status, Text: http.StatusText(status), Message: err.Error()},
	})
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, entry string, p *page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, entry, p); err != nil {
		c.logger.Error("console: rendering", zap.String("page", name), zap.Error(err))
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
