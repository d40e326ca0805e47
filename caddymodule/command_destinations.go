package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/webhookgw/caddy-webhook-gateway/ops"
)

func skipCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "skip <source> <id> --destination <name>",
		Short: "Settles a dead delivery as skipped, so its lane goes on",
		Long: `
Settles the dead delivery of an event to a destination as skipped: the
operator's decision that this destination never gets the event. The
deliveries behind it in its ordered lane then go on. Only a dead delivery
can be skipped; replay it instead to have it delivered.
`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := SkipRequest{Source: args[0], ID: args[1]}
			req.Store, _ = cmd.Flags().GetString("store")
			req.Destination, _ = cmd.Flags().GetString("destination")
			if req.Destination == "" {
				return errors.New("name the delivery to skip with --destination")
			}
			cmd.SilenceUsage = true
			var out ops.SkipResponse
			if _, err := adminCall(cmd, http.MethodPost, "/webhooks/skip", nil, req, &out); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "skipped the delivery of %s %s to %s: its lane goes on without it\n", req.Source, req.ID, req.Destination)
			return err
		},
	}
	addAdminFlags(cmd)
	cmd.Flags().String("destination", "", "The destination of the dead delivery (required)")
	return cmd
}

func destinationsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destinations [--json]",
		Short: "Lists the destinations: state, queue depth, rate, oldest pending, dead, parked lanes",
		Long: `
Lists each destination of the loaded routes, and any other that stored
deliveries name: its state in this gateway (healthy, paused by its
breaker or by an operator, or not loaded), how many deliveries wait
(pending or retrying), this gateway's delivery rate over the last minute,
when the oldest waiting delivery's event was received, how many are dead
and how many of its ordered lanes are parked.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			var out ops.DestinationsResponse
			raw, err := adminCall(cmd, http.MethodGet, "/webhooks/destinations", nil, nil, &out)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			return printDestinations(cmd.OutOrStdout(), out)
		},
	}
	addAdminFlags(cmd)
	cmd.Flags().Bool("json", false, "Print the API's JSON instead of a table")
	return cmd
}

func printDestinations(w io.Writer, out ops.DestinationsResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tSTATE\tQUEUE\tRATE\tOLDEST PENDING\tDEAD\tPARKED LANES")
	for _, d := range out.Destinations {
		state := d.State
		switch {
		case d.PausedByOperator:
			state += " (operator)"
		case d.State == ops.StatePaused:
			state += " (breaker " + d.Breaker + ")"
		}
		oldest := "-"
		if d.OldestPending != nil {
			oldest = cliTime(*d.OldestPending)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f/s\t%s\t%d\t%d\n", d.Name, state, d.QueueDepth, d.Rate, oldest, d.Dead, d.ParkedLanes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Destinations) == 0 {
		fmt.Fprintln(w, "(no destinations)")
	}
	_, err := fmt.Fprintf(w, "store: %s\n", out.Store)
	return err
}

func lanesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lanes <destination> [--json]",
		Short: "Lists the parked lanes of an ordered destination",
		Long: `
Lists the parked lanes of a destination: lanes whose head delivery is
dead, so that nothing behind it is delivered. Replay the head
(caddy webhooks replay <source> <id> --delivery <destination>) and the
lane resumes once it is delivered, or skip it
(caddy webhooks skip <source> <id> --destination <destination>).
`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			var out ops.LanesResponse
			raw, err := adminCall(cmd, http.MethodGet, "/webhooks/lanes", url.Values{"destination": {args[0]}}, nil, &out)
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			return printLanes(cmd.OutOrStdout(), out)
		},
	}
	addAdminFlags(cmd)
	cmd.Flags().Bool("json", false, "Print the API's JSON instead of a table")
	return cmd
}

func printLanes(w io.Writer, out ops.LanesResponse) error {
	if len(out.Lanes) == 0 {
		_, err := fmt.Fprintf(w, "no lane of %s is parked\n", out.Destination)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LANE\tHEAD SOURCE\tHEAD ID\tSEQUENCE\tRECEIVED\tWHY DEAD\tBEHIND")
	for _, l := range out.Lanes {
		behind := "?"
		if out.BehindCounted {
			behind = fmt.Sprint(l.Behind)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Key, l.Head.Source, l.Head.ID, l.Sequence, cliTime(l.Head.ReceivedAt), l.DeadReason, behind)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "replay a head: caddy webhooks replay <source> <id> --delivery %s\nskip it:       caddy webhooks skip <source> <id> --destination %s\n", out.Destination, out.Destination)
	return err
}

// pauseCommand is `pause` (paused true) or `resume`.
func pauseCommand(paused bool) func() *cobra.Command {
	name, path, short := "resume", "/webhooks/resume", "Resumes a destination an operator paused in this gateway"
	if paused {
		name, path, short = "pause", "/webhooks/pause", "Pauses a destination in this gateway: nothing is sent to it until it is resumed"
	}
	return func() *cobra.Command {
		cmd := &cobra.Command{
			Use:   name + " <destination>",
			Short: short,
			Long: `
Pauses or resumes a destination in the gateway whose admin API is called.
A pause is in memory and this gateway's alone: other gateways sharing a
PostgreSQL store go on delivering, and a restart or a config reload
resumes it. While paused nothing is attempted (replays still go out) and
the time does not count toward its deliveries' max_age.
`,
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				req := PauseRequest{Destination: args[0]}
				req.Store, _ = cmd.Flags().GetString("store")
				cmd.SilenceUsage = true
				var out ops.PauseResponse
				if _, err := adminCall(cmd, http.MethodPost, path, nil, req, &out); err != nil {
					return err
				}
				state := "resumed"
				if out.Paused {
					state = "paused"
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s in this gateway\n", strings.TrimSpace(out.Destination), state)
				return err
			},
		}
		addAdminFlags(cmd)
		return cmd
	}
}
