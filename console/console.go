// Package console is the operator's web page on the gateway's stored
// events: an overview that refreshes itself, the event list with filters,
// one event with its attempts, and replay and purge with a preview and a
// confirmation step. It is a plain http.Handler on top of package ops (the
// operations the admin API serves too), with html/template pages and a
// little JavaScript embedded in the binary.
//
// Every link is relative, so the console works under any path prefix,
// stripped or not, as long as its root is requested with a trailing slash.
// Payload content is attacker-influenced: templates escape everything, the
// Content-Security-Policy allows only the console's own script and style,
// and replay and purge are POSTs refused when they come from another site.
package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

// Stores finds the loaded stores.
type Stores interface {
	// Names lists the loaded stores, sorted.
	Names() []string
	// Target returns the named store, or the only one when name is empty;
	// its errors are classified as package ops classifies them.
	Target(name string) (ops.Target, error)
}

// Defaults and bounds.
const (
	// DefaultRefresh is how often the overview refreshes by default.
	DefaultRefresh = 5 * time.Second
	// pageSize is the number of events on one page of the list.
	pageSize = 50
	// sourceScan bounds the events the overview reads to count them per
	// source, so a refresh stays cheap on a big store.
	sourceScan = 5000
	// previewShown is how many of a dry run's requests the confirmation
	// page shows in full.
	previewShown = 10
	// maxForm bounds a POSTed form: it carries a filter, never events.
	maxForm = 64 << 10
)

// Content-Security-Policy of every answer: the console's own script and
// style only, no inline code, no framing, forms posted only back to it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

var _ http.Handler = (*Console)(nil)

// Console serves the console's pages. Create it with New.
type Console struct {
	stores  Stores
	refresh time.Duration
	counts  *overviewCounts
	logger  *zap.Logger
	pages   map[string]*template.Template
	assets  http.Handler
	csrf    *http.CrossOriginProtection
}

// Config configures a Console.
type Config struct {
	// Stores finds the stores to show.
	Stores Stores
	// Refresh is how often the overview page refreshes its counts.
	// Default: DefaultRefresh.
	Refresh time.Duration
	// Logger receives the errors that are the gateway's (status 500),
	// never a request's content. Default: none.
	Logger *zap.Logger
}

// New builds a console.
func New(cfg Config) (*Console, error) {
	if cfg.Stores == nil {
		return nil, errors.New("console: no stores to show")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	assets, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, err
	}
	return &Console{
		stores:  cfg.Stores,
		refresh: cfg.Refresh,
		counts:  newOverviewCounts(cfg.Refresh),
		logger:  cfg.Logger,
		pages:   pages,
		assets:  http.FileServerFS(assets),
		// Go's check: a browser marks a cross-site request with
		// Sec-Fetch-Site or an Origin that is not the Host. A form on
		// another site posting here with the operator's basic_auth
		// credentials is refused.
		csrf: http.NewCrossOriginProtection(),
	}, nil
}

// pageNames are the templates with a page of their own; each is parsed
// with the layout.
var pageNames = []string{"overview", "events", "event", "confirm", "confirm-event", "result", "error", "destinations", "lanes"}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: parsing the layout: %w", err)
	}
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parsing page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// ServeHTTP routes on the last segment of the path, so that the mount point
// does not matter.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")

	page := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	switch page {
	case "console.js", "console.css":
		if !c.method(w, r, http.MethodGet) {
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + page
		c.assets.ServeHTTP(w, r2)
		return
	}
	// Pages show the store's current state; a cached one would mislead.
	h.Set("Cache-Control", "no-store")
	switch page {
	case "":
		if c.method(w, r, http.MethodGet) {
			c.overview(w, r, "overview")
		}
	case "live":
		if c.method(w, r, http.MethodGet) {
			c.overview(w, r, "live")
		}
	case "events":
		if c.method(w, r, http.MethodGet) {
			c.events(w, r)
		}
	case "event":
		if c.method(w, r, http.MethodGet) {
			c.event(w, r)
		}
	case "confirm":
		if c.method(w, r, http.MethodGet) {
			c.confirm(w, r)
		}
	case "replay":
		if c.action(w, r) {
			c.replay(w, r)
		}
	case "purge":
		if c.action(w, r) {
			c.purge(w, r)
		}
	case "destinations":
		if c.method(w, r, http.MethodGet) {
			c.destinations(w, r)
		}
	case "lanes":
		if c.method(w, r, http.MethodGet) {
			c.lanes(w, r)
		}
	case "skip":
		if c.action(w, r) {
			c.skip(w, r)
		}
	case "pause":
		if c.action(w, r) {
			c.pause(w, r)
		}
	default:
		c.fail(w, r, ops.Mark(ops.ErrNotFound, fmt.Errorf("no console page %q", page)))
	}
}

// method answers 405 unless r uses m.
func (c *Console) method(w http.ResponseWriter, r *http.Request, m string) bool {
	if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", m)
	c.failStatus(w, r, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed here; use %s", r.Method, m))
	return false
}

// action admits a replay or purge: a POST from the console's own pages,
// with its form parsed.
func (c *Console) action(w http.ResponseWriter, r *http.Request) bool {
	if !c.method(w, r, http.MethodPost) {
		return false
	}
	if err := c.csrf.Check(r); err != nil {
		c.failStatus(w, r, http.StatusForbidden, fmt.Errorf("refused a cross-site request: replay and purge are accepted only from the console's own pages (%w)", err))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.failStatus(w, r, http.StatusBadRequest, fmt.Errorf("reading the form: %w", err))
		return false
	}
	return true
}
