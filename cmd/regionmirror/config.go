package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/config"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show and check the configuration",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration (file, environment and defaults), secrets redacted",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			out, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(out)
			return err
		}),
	}, &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and exit 0, or name the bad key and exit 2",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if _, err := a.loadConfig(); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "configuration is valid")
			return nil
		}),
	}, &cobra.Command{
		Use:   "keys",
		Short: "List every configuration key and its environment variable",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			rows := [][]string{}
			for _, k := range config.Keys() {
				rows = append(rows, []string{k, config.EnvVar(k)})
			}
			return printTable(a.stdout, []string{"KEY", "ENVIRONMENT"}, rows)
		}),
	})
	return cmd
}
