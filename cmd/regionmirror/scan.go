package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/db"
	"github.com/regionmirror/regionmirror/internal/model"
	"github.com/regionmirror/regionmirror/scanner"
)

func (a *app) scanCmd() *cobra.Command {
	var (
		regions []string
		deep    bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "scan [--region R]... [--deep] [--json]",
		Short: "Verify what every region really holds, and each repository as clients read it",
		Long: `List every region's storage and compare it with what is recorded: objects missing, with
other bytes, or unknown to the origin. An ETag is trusted as an MD5 only outside SSE-KMS
and SSE-C; where it cannot tell, a HEAD reads the stored x-amz-checksum-sha256 (--deep
reads the object when there is none). Then read every repository's repomd.xml through the
region's public URL, as dnf does: a version the origin published is fresh or alternate only
when the files it names have the checksums it names in the region, and (for the current
one) repomd.xml.asc is the origin's. Each region is judged under its write lock; beside a
running push only unreachable repositories are recorded. Each region's health follows
with hysteresis (scan.down_after, scan.up_after).`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			targets, err := d.ResolveRegions(ctx, splitList(regions))
			if err != nil {
				return err
			}
			reports, err := a.newScanner(d, deep).Scan(ctx, targets)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(a.stdout, reports); err != nil {
					return err
				}
			} else {
				printScan(a, reports)
			}
			// Exit 1 when any region could not be scanned or serves a repository clients
			// cannot use, so that monitoring can act on the exit status alone.
			failed := regionsWhere(reports, func(r *scanner.RegionReport) (string, bool) {
				return r.Region, r.Status != model.RunOK || !servesAll(r)
			})
			if len(failed) > 0 {
				return fmt.Errorf("scan found problems in %s", strings.Join(failed, ", "))
			}
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&regions, "region", "r", nil, "scan only this region (repeatable; default: all)")
	cmd.Flags().BoolVar(&deep, "deep", false, "check contents by SHA-256 where the ETag cannot tell (reads objects)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func printScan(a *app, reports []*scanner.RegionReport) {
	rows := [][]string{}
	for _, r := range reports {
		states := map[string]int{}
		for _, repo := range r.Repos {
			states[repo.State]++
		}
		var repos []string
		for _, s := range []string{model.RepoFresh, model.RepoAlternate, model.RepoStale, model.RepoMissing, model.RepoUnreachable} {
			if states[s] > 0 {
				repos = append(repos, fmt.Sprintf("%d %s", states[s], s))
			}
		}
		note := r.Error
		if note == "" {
			note = r.Skipped
		}
		rows = append(rows, []string{r.Region, r.Status, r.Health, strconv.Itoa(r.Listed), strconv.Itoa(r.Verified),
			strconv.Itoa(r.Missing), strconv.Itoa(r.Corrupt), strconv.Itoa(r.Extra), strings.Join(repos, ", "), roundDuration(r.Duration), note})
	}
	printTable(a.stdout, []string{"REGION", "STATUS", "HEALTH", "LISTED", "VERIFIED", "MISSING", "CORRUPT", "EXTRA", "REPOSITORIES", "TOOK", "NOTE"}, rows)
}

func servesAll(r *scanner.RegionReport) bool {
	for _, repo := range r.Repos {
		// Read beside a push (not recorded): a half-written state says nothing yet.
		if !repo.NotRecorded && repo.State != model.RepoFresh && repo.State != model.RepoAlternate {
			return false
		}
	}
	return true
}

// newScanner wires a scanner from the configuration.
func (a *app) newScanner(d *db.DB, deep bool) *scanner.Scanner {
	c := scanner.NewConfig(a.cfg.Scan)
	c.Deep = deep
	return &scanner.Scanner{DB: d, Log: a.log, Config: c}
}
