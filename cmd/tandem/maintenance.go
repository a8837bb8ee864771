package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tandem-pg/tandem/internal/cli"
	"github.com/tandem-pg/tandem/lifecycle"
	"github.com/tandem-pg/tandem/migrate"
)

// newMaintenanceCmd is `tandem maintenance on|off|status`.
func newMaintenanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance",
		Short: "Turn maintenance mode on or off, or show it with the instances alive",
		Long: `Maintenance mode is a flag in the database (table "maintenance" in the state schema).
Instances using the lifecycle package see a change at once (LISTEN/NOTIFY, with polling as
the fallback): workers stop taking tasks and costly routes answer 503 with Retry-After,
while serving continues.`,
		Args: cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.UsageErr(fmt.Errorf("%s: want one of on, off, status", cmd.CommandPath()))
		},
	}
	var reason string
	var onJSON, offJSON bool
	on := &cobra.Command{
		Use:   "on",
		Short: "Turn maintenance mode on",
		Args:  cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return setMaintenance(cmd.Context(), cmd, true, reason, onJSON)
		},
	}
	on.Flags().StringVar(&reason, "reason", "", "why, recorded with the flag")
	on.Flags().BoolVar(&onJSON, "json", false, "print the flag as JSON")
	off := &cobra.Command{
		Use:   "off",
		Short: "Turn maintenance mode off",
		Args:  cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return setMaintenance(cmd.Context(), cmd, false, "", offJSON)
		},
	}
	off.Flags().BoolVar(&offJSON, "json", false, "print the flag as JSON")
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the maintenance flag and the instances alive",
		Args:  cli.ArgsErr(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return maintenanceStatus(cmd.Context(), cmd, asJSON)
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(on, off, status)
	return cmd
}

// connect opens one connection from --postgres-url, TANDEM_POSTGRES_URL or the PG* variables.
func connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(global.postgresURL)
	if err != nil {
		return nil, cli.UsageErr(fmt.Errorf("--postgres-url: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, migrate.NewConnectError(err)
	}
	return conn, nil
}

func setMaintenance(ctx context.Context, cmd *cobra.Command, enabled bool, reason string, asJSON bool) error {
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := lifecycle.SetMaintenance(ctx, conn, global.stateSchema, enabled, reason)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), st)
	}
	word := "off"
	if st.Enabled {
		word = "on"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "maintenance mode %s (state schema %s)\n", word, global.stateSchema)
	return nil
}

// maintenanceReport is what `tandem maintenance status --json` prints.
type maintenanceReport struct {
	Maintenance lifecycle.MaintenanceStatus `json:"maintenance"`
	Versions    []lifecycle.VersionCount    `json:"versions"`
	Instances   []lifecycle.Instance        `json:"instances"`
}

func maintenanceStatus(ctx context.Context, cmd *cobra.Command, asJSON bool) error {
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var rep maintenanceReport
	if rep.Maintenance, err = lifecycle.GetMaintenance(ctx, conn, global.stateSchema); err != nil {
		return err
	}
	reg := &lifecycle.Registry{DB: conn, Schema: global.stateSchema}
	if rep.Versions, err = reg.Versions(ctx); err != nil {
		return err
	}
	if rep.Instances, err = reg.Instances(ctx); err != nil {
		return err
	}
	if rep.Versions == nil {
		rep.Versions = []lifecycle.VersionCount{}
	}
	if rep.Instances == nil {
		rep.Instances = []lifecycle.Instance{}
	}
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	m := rep.Maintenance
	if m.Enabled {
		fmt.Fprintf(out, "maintenance: on since %s by %s", m.ChangedAt.Format(time.RFC3339), m.ChangedBy)
		if m.Reason != "" {
			fmt.Fprintf(out, " (%s)", m.Reason)
		}
		fmt.Fprintln(out)
	} else {
		fmt.Fprintln(out, "maintenance: off")
	}
	if len(rep.Instances) == 0 {
		fmt.Fprintln(out, "instances: none registered")
		return nil
	}
	fmt.Fprintln(out, "versions alive:")
	for _, v := range rep.Versions {
		fmt.Fprintf(out, "  %s %s (schema %s): %d instance(s)\n", v.App, v.AppVersion, v.SchemaVersion, v.Instances)
	}
	fmt.Fprintln(out, "instances:")
	for _, i := range rep.Instances {
		fmt.Fprintf(out, "  %-40s %-8s %-8s %-10s %s, heartbeat %s ago\n", i.ID, i.Role, i.State, i.AppVersion,
			i.SchemaVersion, time.Since(i.HeartbeatAt).Round(time.Second))
	}
	return nil
}
