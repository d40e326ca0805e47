package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// builtinWebhookCommands are the subcommands of `caddy webhooks` that
// work on stored events through the admin API.
var builtinWebhookCommands = []func() *cobra.Command{listCommand, showCommand, replayCommand, countsCommand, purgeCommand,
	skipCommand, destinationsCommand, lanesCommand, pauseCommand(true), pauseCommand(false)}

// The subcommands other packages add with RegisterWebhooksCommand, by name.
var (
	extraWebhookCommandsMu sync.Mutex
	extraWebhookCommands   = map[string]func() *cobra.Command{}
)

// RegisterWebhooksCommand adds a subcommand to `caddy webhooks`. Call it
// from the init function of a package that the Caddy main imports: the
// gateway's own packages add nothing this way, so a plugin build carries
// only the subcommands its builder chose (cmd/caddy imports
// harness/harnesscmd, which adds `emit` and `sink`). newCmd is called once
// here, to learn the subcommand's name, and again each time Caddy builds its
// command tree, so it must return a new command on every call.
//
// Like caddycmd.RegisterCommand, it panics if newCmd is nil or returns a
// command without a name or with a name already taken, by a built-in
// subcommand (list, show, replay, counts, purge, skip, destinations, lanes,
// pause, resume) or an earlier registration.
func RegisterWebhooksCommand(newCmd func() *cobra.Command) {
	if newCmd == nil {
		panic("caddy webhooks: command constructor is nil")
	}
	name := newCmd().Name()
	if name == "" {
		panic("caddy webhooks: command name is required")
	}
	for _, builtin := range builtinWebhookCommands {
		if builtin().Name() == name {
			panic("caddy webhooks: command already registered: " + name)
		}
	}
	extraWebhookCommandsMu.Lock()
	defer extraWebhookCommandsMu.Unlock()
	if _, exists := extraWebhookCommands[name]; exists {
		panic("caddy webhooks: command already registered: " + name)
	}
	extraWebhookCommands[name] = newCmd
}

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "webhooks",
		Usage:     "<command> [flags]",
		Short:     "Inspects, replays and purges the webhook gateway's stored events",
		Long:      webhooksLong,
		CobraFunc: configureWebhooksCommand,
	})
}

const webhooksLong = `
Works with a running Caddy's webhook gateway through its admin API
(the /webhooks/ endpoints), the way 'caddy reload' does: the admin
address is --address, else the admin address of the config given with
--config, else localhost:2019.

  caddy webhooks list [--status dead] [--source /usaepay] [--destination orders] [--limit 20]
  caddy webhooks show <source> <id>
  caddy webhooks replay <source> <id> [--delivery <destination>] [--destination <name>] [--dry-run]
  caddy webhooks replay --status dead [--source /usaepay] [--delivery <destination>] [--dry-run]
  caddy webhooks skip <source> <id> --destination <name>
  caddy webhooks destinations
  caddy webhooks lanes <destination>
  caddy webhooks pause|resume <destination>
  caddy webhooks counts
  caddy webhooks purge --status dead [--to 2026-01-01T00:00:00Z] | --all

When several stores are loaded, name one with --store (a badger store's
name is its directory, a postgres store's its database as
postgres://user@host:port/db, then #schema when one is set).
`

// webhooksCommand returns the `webhooks` command with all its
// subcommands, standalone: Caddy's command tree gets the same subcommands
// through configureWebhooksCommand.
func webhooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks <command> [flags]",
		Short: "Inspects, replays and purges the webhook gateway's stored events",
		Long:  webhooksLong,
	}
	configureWebhooksCommand(cmd)
	return cmd
}

func configureWebhooksCommand(cmd *cobra.Command) {
	for _, newCmd := range builtinWebhookCommands {
		cmd.AddCommand(newCmd())
	}
	extraWebhookCommandsMu.Lock()
	defer extraWebhookCommandsMu.Unlock()
	// Cobra sorts subcommands by name for help, so map order does not show.
	for _, newCmd := range extraWebhookCommands {
		cmd.AddCommand(newCmd())
	}
}

// addAdminFlags adds the flags that locate the admin API. They are added to
// each subcommand rather than the parent so other subcommands (a sink, a
// simulator) may use the same names for their own addresses.
func addAdminFlags(cmd *cobra.Command) {
	cmd.Flags().String("address", "", "The admin API address (default: from --config, else localhost:2019)")
	cmd.Flags().StringP("config", "c", "", "Config file to read the admin address from")
	cmd.Flags().StringP("adapter", "a", "", "Name of the config adapter of --config")
	cmd.Flags().String("store", "", "Store name (a badger store's directory, a postgres store's database), when several are loaded")
}

// addFilterFlags adds the event filter flags shared by list, replay and
// purge.
func addFilterFlags(cmd *cobra.Command) {
	cmd.Flags().String("source", "", "Only events of this source (e.g. /usaepay)")
	cmd.Flags().String("provider", "", "Only events of this provider (openloyalty, sublytics, usaepay)")
	cmd.Flags().String("type", "", "Only events of this type")
	cmd.Flags().String("subject", "", "Only events about this subject (the customer, order or transaction id; exact match)")
	cmd.Flags().String("id", "", "Only the event with this id (needs --source)")
	cmd.Flags().String("status", "", "Only events in this status (reserved, held, pending, retrying, delivered, dead, skipped, released, unmatched); with a destination, its delivery's status")
	cmd.Flags().String("from", "", "Only events received at or after this RFC 3339 time")
	cmd.Flags().String("to", "", "Only events received before this RFC 3339 time")
}

func listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--status <status>] [--source <source>] [--subject <subject>] [--limit <n>] [--cursor <cursor>]",
		Short: "Lists stored events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			q := filterQuery(cmd)
			for _, name := range []string{"cursor", "limit"} {
				if v, _ := cmd.Flags().GetString(name); v != "" {
					q.Set(name, v)
				}
			}
			var out ops.ListResponse
			raw, err := adminCall(cmd, http.MethodGet, "/webhooks/events", q, nil, &out)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			return printEvents(cmd.OutOrStdout(), out)
		},
	}
	addAdminFlags(cmd)
	addFilterFlags(cmd)
	addDestinationFilterFlag(cmd, "destination")
	cmd.Flags().String("limit", "", "Events per page (default 100, at most 1000)")
	cmd.Flags().String("cursor", "", "Continue a previous listing")
	cmd.Flags().Bool("json", false, "Print the API's JSON instead of a table")
	return cmd
}

func showCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show <source> <id> [--json]",
		Short: "Shows one event: record, attempts, headers, canonical event and raw body",
		Long: `Shows one event: its record and attempts in human units, the provider's
headers (secrets removed), the canonical event as delivered and the raw body.
With --json, the admin API's answer with times in RFC 3339, durations in
milliseconds (latency_ms, retention_ms, dedup_window_ms) and unset times
left out.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			q := url.Values{"source": {args[0]}, "id": {args[1]}}
			var view ops.EventView
			raw, err := adminCall(cmd, http.MethodGet, "/webhooks/event", q, nil, &view)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				out, err := showJSON(raw)
				if err != nil {
					return fmt.Errorf("reading the admin API's answer: %w", err)
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			return printEvent(cmd.OutOrStdout(), &view)
		},
	}
	addAdminFlags(cmd)
	cmd.Flags().Bool("json", false, "Print JSON (RFC 3339 times, durations in milliseconds) instead of text")
	return cmd
}

// durationFields are the record's durations, which the API writes in
// nanoseconds (Go's time.Duration); show --json writes them as
// <name>_ms.
var durationFields = []string{"latency", "retention", "dedup_window"}

// zeroTime is how the API writes a time that is not set.
const zeroTime = `"0001-01-01T00:00:00Z"`

// showJSON rewrites the admin API's event for a reader: durations in
// milliseconds, unset times left out, in the record, in each delivery and
// in each of its attempts.
// Every other member, the canonical event and the raw body, is kept as it
// is, so fields the API gains later pass through.
func showJSON(raw []byte) ([]byte, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	if err := readableMembers(rec); err != nil {
		return nil, err
	}
	if ds, ok := rec["deliveries"]; ok {
		var deliveries []map[string]json.RawMessage
		if err := json.Unmarshal(ds, &deliveries); err != nil {
			return nil, fmt.Errorf("deliveries: %w", err)
		}
		for _, d := range deliveries {
			if err := readableMembers(d); err != nil {
				return nil, err
			}
			if err := readableList(d, "attempts"); err != nil {
				return nil, err
			}
		}
		b, err := json.Marshal(deliveries)
		if err != nil {
			return nil, err
		}
		rec["deliveries"] = b
	}
	out, err := json.MarshalIndent(rec, "", "  ")
	return append(out, '\n'), err
}

// readableList applies showJSON's rules to each object of the list obj[k].
func readableList(obj map[string]json.RawMessage, k string) error {
	v, ok := obj[k]
	if !ok {
		return nil
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return fmt.Errorf("%s: %w", k, err)
	}
	for _, o := range list {
		if err := readableMembers(o); err != nil {
			return err
		}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	obj[k] = b
	return nil
}

// readableMembers applies showJSON's rules to one object's members.
func readableMembers(obj map[string]json.RawMessage) error {
	for k, v := range obj {
		if string(v) == zeroTime {
			delete(obj, k)
		}
	}
	for _, k := range durationFields {
		v, ok := obj[k]
		if !ok {
			continue
		}
		var ns int64
		if err := json.Unmarshal(v, &ns); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		delete(obj, k)
		obj[k+"_ms"] = json.RawMessage(strconv.FormatFloat(float64(ns)/float64(time.Millisecond), 'f', -1, 64))
	}
	return nil
}

// printEvent writes one event for a reader: facts first, then the
// attempts, the headers, the canonical event and the raw body. Times are
// UTC in RFC 3339; unset ones are left out.
func printEvent(w io.Writer, v *ops.EventView) error {
	s := ops.Summarize(v.Record)
	head := s.Type
	if s.Subject != "" {
		head += "  subject " + s.Subject
	}
	fmt.Fprintln(w, head)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fact := func(name, value string) { fmt.Fprintf(tw, "  %s\t%s\n", name, value) }
	fact("id", v.ID)
	fact("source", v.Source+" (provider "+v.Provider+")")
	fact("status", string(v.Status))
	fact("received", cliTime(v.ReceivedAt))
	if s.NextAttemptAt != nil {
		fact("next attempt", cliTime(*s.NextAttemptAt))
	}
	// The trace id is what a trace viewer searches by; the event's
	// attempts and replays are spans of that trace.
	if p := strings.Split(v.TraceParent, "-"); len(p) == 4 {
		fact("trace", p[1])
	}
	if v.BatchSize > 1 {
		fact("in its request", fmt.Sprintf("item %d of a batch of %d", v.BatchIndex, v.BatchSize))
	}
	if v.Retention > 0 {
		fact("retention", humanDuration(v.Retention)+" once delivered")
	} else {
		fact("retention", "until purged")
	}
	if v.DedupKey != "" {
		fact("dedup key", v.DedupKey+" for "+humanDuration(v.DedupWindow))
	}
	if !v.ReservedUntil.IsZero() {
		fact("reserved until", cliTime(v.ReservedUntil))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(v.Deliveries) == 0 {
		fmt.Fprintln(w, "\ndeliveries: none (it matched no destination's filter)")
	}
	for i := range v.Deliveries {
		if err := printDelivery(w, &v.Deliveries[i]); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nheaders (secrets removed):")
	names := make([]string, 0, len(v.Headers))
	for name := range v.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %s: %s\n", name, strings.Join(v.Headers[name], ", "))
	}

	fmt.Fprintln(w, "\ncanonical event:")
	var ev bytes.Buffer
	if json.Indent(&ev, v.Event, "  ", "  ") != nil {
		ev.Reset()
		ev.Write(v.Event)
	}
	fmt.Fprintf(w, "  %s\n", ev.Bytes())

	if v.RawBodyBase64 != "" {
		fmt.Fprintf(w, "\nraw body (not UTF-8, base64):\n%s\n", v.RawBodyBase64)
	} else {
		fmt.Fprintf(w, "\nraw body:\n%s\n", v.RawBody)
	}
	return nil
}

// printDelivery writes one delivery of an event: its facts, then its
// attempts.
func printDelivery(w io.Writer, d *store.Delivery) error {
	fmt.Fprintf(w, "\nto %s: %s\n", d.Destination, d.Status)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fact := func(name, value string) { fmt.Fprintf(tw, "  %s\t%s\n", name, value) }
	if why := ops.DeadReasonText(d.DeadReason); why != "" {
		fact("why dead", why)
	}
	if d.Lane != "" {
		lane := fmt.Sprintf("%s, sequence %d", d.Lane, d.Sequence)
		if d.Status == store.StatusDead {
			lane += " (parked: replay or skip it)"
		}
		fact("lane", lane)
	}
	if sum := ops.SummarizeDelivery(d); sum.NextAttemptAt != nil {
		fact("next attempt", cliTime(*sum.NextAttemptAt))
	}
	if d.Replays > 0 {
		fact("replays", strconv.Itoa(d.Replays))
	}
	if !d.LeaseUntil.IsZero() {
		fact("leased", "by "+d.LeaseOwner+" until "+cliTime(d.LeaseUntil))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Attempts) == 0 {
		fmt.Fprintln(w, "  attempts: none yet")
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tAT\tSTATUS\tLATENCY\tERROR")
	for _, a := range d.Attempts {
		status := "-"
		if a.Status != 0 {
			status = strconv.Itoa(a.Status)
		}
		errText := a.Error
		if a.Destination != "" {
			errText = strings.TrimSpace("(to " + a.Destination + ") " + errText)
		}
		if a.Replay {
			errText = strings.TrimSpace("(replay) " + errText)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", a.Number, cliTime(a.At), status, humanDuration(a.Latency), errText)
	}
	return tw.Flush()
}

// cliTime is a time as the CLI prints it: UTC, RFC 3339, to the second.
func cliTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// humanDuration writes a duration in the unit a reader expects: whole days
// for retentions, h/m/s for minutes and more, milliseconds (to 0.1) below
// a second.
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d <= 0:
		return "0s"
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Minute:
		s := d.Round(time.Second).String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

func replayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay (<source> <id> | [filter flags] | --all) [--delivery <destination>] [--destination <name>] [--dry-run]",
		Short: "Sends stored events to their destinations again (JSON result)",
		Long: `
Replays one event (by source and id) or every event matching the filter
flags, now, whatever its status, and prints what was sent and how each
backend answered. The request carries Webhook-Replay: true. --dry-run
sends nothing and prints what would be sent. An event has a delivery per
destination: a replay sends each one that is not delivered or skipped
(every one when all are), or with --delivery <destination> that one
alone (the head of a parked lane, say). Each goes to its destination with
that destination's upstreams and signing secret; --destination sends the
event once to another one (the delivery then keeps its status: the
attempt is history). A replay needs the destination to be delivered by a
loaded async route.
`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := ReplayRequest{}
			req.Store, _ = cmd.Flags().GetString("store")
			req.DryRun, _ = cmd.Flags().GetBool("dry-run")
			req.All, _ = cmd.Flags().GetBool("all")
			req.Destination, _ = cmd.Flags().GetString("destination")
			fr := filterRequest(cmd)
			fr.Limit, _ = cmd.Flags().GetInt("limit")
			switch {
			case len(args) == 2:
				req.Delivery, fr.Destination = fr.Destination, ""
				if *fr != (ops.FilterRequest{}) || req.All {
					return errors.New("give either <source> <id> or filter flags, not both")
				}
				req.Source, req.ID = args[0], args[1]
			case len(args) == 1:
				return errors.New("replay by id needs both <source> and <id>")
			case *fr == (ops.FilterRequest{}) && !req.All:
				return errors.New("nothing to replay: give <source> <id>, filter flags (e.g. --status dead), or --all")
			default:
				req.Filter = fr
			}
			cmd.SilenceUsage = true
			raw, err := adminCall(cmd, http.MethodPost, "/webhooks/replay", nil, req, nil)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(raw)
			return err
		},
	}
	addAdminFlags(cmd)
	addFilterFlags(cmd)
	cmd.Flags().Int("limit", 0, "Replay at most this many matching events (0: all)")
	cmd.Flags().Bool("all", false, "Replay every stored event (no filter)")
	cmd.Flags().Bool("dry-run", false, "Send nothing; print what would be sent")
	cmd.Flags().String("destination", "", "Send to this destination instead of each delivery's own")
	addDestinationFilterFlag(cmd, "delivery")
	return cmd
}

func countsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "counts",
		Short: "Counts stored events by status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			var out ops.CountsResponse
			if _, err := adminCall(cmd, http.MethodGet, "/webhooks/counts", nil, nil, &out); err != nil {
				return err
			}
			return printCounts(cmd.OutOrStdout(), out)
		},
	}
	addAdminFlags(cmd)
	return cmd
}

func purgeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge ([filter flags] | --all) [--limit <n>]",
		Short: "Deletes stored events matching the filter flags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := PurgeRequest{Filter: filterRequest(cmd)}
			req.Store, _ = cmd.Flags().GetString("store")
			req.All, _ = cmd.Flags().GetBool("all")
			req.Filter.Limit, _ = cmd.Flags().GetInt("limit")
			if noFilter := (ops.FilterRequest{Limit: req.Filter.Limit}); *req.Filter == noFilter && !req.All {
				return errors.New("refusing to purge every event: give filter flags (e.g. --status dead), or --all")
			}
			cmd.SilenceUsage = true
			var out ops.PurgeResponse
			if _, err := adminCall(cmd, http.MethodPost, "/webhooks/purge", nil, req, &out); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "purged %d events from %s\n", out.Purged, out.Store)
			return err
		},
	}
	addAdminFlags(cmd)
	addFilterFlags(cmd)
	addDestinationFilterFlag(cmd, "destination")
	cmd.Flags().Int("limit", 0, "Delete at most this many matching events (0: all)")
	cmd.Flags().Bool("all", false, "Delete every stored event (no filter)")
	return cmd
}

// addDestinationFilterFlag adds the filter by destination as --destination
// (list, purge); replay names it --delivery, since its --destination is
// where to send.
func addDestinationFilterFlag(cmd *cobra.Command, name string) {
	cmd.Flags().String(name, "", "Only events with a delivery to this destination (with --status, that delivery's status)")
}

// destinationFilterFlag is the name of the filter by destination in cmd.
func destinationFilterFlag(cmd *cobra.Command) string {
	if cmd.Name() == "replay" {
		return "delivery"
	}
	return "destination"
}

func filterRequest(cmd *cobra.Command) *ops.FilterRequest {
	get := func(name string) string { v, _ := cmd.Flags().GetString(name); return v }
	return &ops.FilterRequest{
		Destination: get(destinationFilterFlag(cmd)),
		Source:      get("source"),
		Provider:    get("provider"),
		Type:        get("type"),
		Subject:     get("subject"),
		ID:          get("id"),
		Status:      get("status"),
		From:        get("from"),
		To:          get("to"),
	}
}

func filterQuery(cmd *cobra.Command) url.Values {
	fr := filterRequest(cmd)
	q := url.Values{}
	for k, v := range map[string]string{"source": fr.Source, "provider": fr.Provider, "type": fr.Type,
		"subject": fr.Subject, "id": fr.ID, "destination": fr.Destination, "status": fr.Status, "from": fr.From, "to": fr.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// adminCall sends one request to the admin API and returns the answer's
// body, decoded into out when out is not nil.
func adminCall(cmd *cobra.Command, method, path string, q url.Values, body any, out any) ([]byte, error) {
	address, _ := cmd.Flags().GetString("address")
	configFile, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, configFile, adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin API address: %w", err)
	}
	if st, _ := cmd.Flags().GetString("store"); st != "" && method == http.MethodGet {
		if q == nil {
			q = url.Values{}
		}
		q.Set("store", st)
	}
	uri := path
	if len(q) > 0 {
		uri += "?" + q.Encode()
	}
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		reqBody = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, reqBody)
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decoding the admin API's answer: %w", err)
		}
	}
	return raw, nil
}

func printEvents(w io.Writer, out ops.ListResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tSOURCE\tID\tTYPE\tSUBJECT\tSTATUS\tATTEMPTS\tLAST")
	for _, e := range out.Events {
		subject := e.Subject
		if subject == "" {
			subject = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			e.ReceivedAt.UTC().Format(time.RFC3339), e.Source, e.ID, e.Type, subject, e.Status, e.Attempts, lastOutcome(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Events) == 0 {
		fmt.Fprintln(w, "(no events)")
	}
	if out.NextCursor != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", out.NextCursor)
	}
	return nil
}

// lastOutcome is a short text of the latest attempt for the table; the
// full error is in `show`.
func lastOutcome(e ops.EventSummary) string {
	if e.Attempts == 0 {
		return "-"
	}
	s := ""
	if e.LastStatus != 0 {
		s = fmt.Sprint(e.LastStatus)
	}
	if e.LastError != "" {
		msg := e.LastError
		if len(msg) > 60 {
			msg = msg[:57] + "..."
		}
		s = strings.TrimSpace(s + " " + msg)
	}
	return s
}

func printCounts(w io.Writer, out ops.CountsResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// Life-cycle order reads better than alphabetical; unknown statuses
	// (from a newer store) follow, sorted.
	order := append([]store.Status(nil), ops.Statuses...)
	var extra []string
	for s := range out.Counts {
		if !ops.IsKnownStatus(s) {
			extra = append(extra, string(s))
		}
	}
	sort.Strings(extra)
	for _, s := range extra {
		order = append(order, store.Status(s))
	}
	fmt.Fprintln(tw, "STATUS\tCOUNT\t")
	for _, s := range order {
		fmt.Fprintf(tw, "%s\t%d\t\n", s, out.Counts[s])
	}
	fmt.Fprintf(tw, "total\t%d\t\n", out.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "store: %s\n", out.Store)
	return err
}
