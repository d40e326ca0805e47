package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The alert rules and the dashboard of docs/ops query the module's metrics
// by name; these tests keep the names in step with what the module exports.

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	metricRef  = regexp.MustCompile(`\bwebhook_gateway_[a-z0-9_]+`)
	opsDocsDir = filepath.Join("..", "docs", "ops")
)

// exportedSeries returns every series name the module exports: each
// collector's metrics, and a histogram's _bucket, _sum and _count.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range newGatewayMetrics(newRegistry()).collectors() {
		c.Describe(ch)
	}
	close(ch)
	histograms := []string{metricDuration, metricStoreSyncBatch}
	out := map[string]bool{}
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		if slices.Contains(histograms, m[1]) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[m[1]+suffix] = true
			}
			continue
		}
		out[m[1]] = true
	}
	return out
}

// baseName is a series name without a histogram's suffix.
func baseName(series string, exported map[string]bool) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(series, suffix); ok && exported[series] {
			return b
		}
	}
	return series
}

func TestOpsDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(opsDocsDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Fatalf("dashboard without title or uid: %q %q", dash.Title, dash.UID)
	}
	exported := exportedSeries(t)
	shown := map[string]bool{}
	check := func(where, expr string) {
		t.Helper()
		refs := metricRef.FindAllString(expr, -1)
		if len(refs) == 0 {
			t.Errorf("%s: %q queries none of the module's metrics", where, expr)
		}
		for _, r := range refs {
			if !exported[r] {
				t.Errorf("%s: %q queries %s, which the module does not export", where, expr, r)
			}
			shown[baseName(r, exported)] = true
		}
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title+" "+tg.RefID, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			check("variable "+v.Name, v.Definition)
		}
	}
	// Every metric the module exports has a panel.
	for name := range exported {
		if !shown[baseName(name, exported)] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

func TestOpsAlertRulesQueryExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(opsDocsDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedSeries(t)
	refs := metricRef.FindAllString(string(raw), -1)
	if len(refs) == 0 {
		t.Fatal("alerts.yml names none of the module's metrics")
	}
	for _, r := range refs {
		if !exported[r] {
			t.Errorf("alerts.yml names %s, which the module does not export", r)
		}
	}
}
