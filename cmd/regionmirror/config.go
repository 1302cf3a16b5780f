package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

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
	}, &cobra.Command{
		Use:   "hash-token",
		Short: "Read a bearer token from stdin and print the hash to list in server.admin_tokens",
		Long: `Read a bearer token (one line) from standard input and print its hash for
server.admin_tokens: the configuration holds only hashes, never the tokens.`,
		Example: `  openssl rand -hex 32 | tee token | regionmirror config hash-token`,
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(a.stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the token: %w", err)
			}
			tok := strings.TrimSpace(line)
			if len(tok) < 16 {
				return usagef("config hash-token: give a token of at least 16 characters on stdin (openssl rand -hex 32)")
			}
			fmt.Fprintln(a.stdout, config.HashToken(tok))
			return nil
		}),
	})
	return cmd
}
