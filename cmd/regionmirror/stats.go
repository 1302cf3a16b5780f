package main

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/human"
	"github.com/regionmirror/regionmirror/internal/model"
)

// maxStatsWeeks bounds --weeks: ten years is more than any window worth a table.
const maxStatsWeeks = 520

// statsBucketHeaders are the table's short names of model.CountmeBuckets, in its order.
var statsBucketHeaders = [4]string{"NEW", "<1M", "<6M", "OLDER"}

func (a *app) statsCmd() *cobra.Command {
	var (
		repo   string
		weeks  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stats [--repo R] [--weeks N] [--json]",
		Short: "Show usage: dnf's countme requests per week, repository and arch, and requests and bytes per region",
		Long: fmt.Sprintf(`Show the usage figures every server adds to the database: dnf's countme requests (one
metalink request per machine and week) per ISO week, repository and arch, for the last
--weeks weeks (this one included), and the requests and bytes redirected to each region
(the origin as "origin") summed over the same window. The countme columns are the age of
the machine that sent it:
  %-5s  %s
  %-5s  %s
  %-5s  %s
  %-5s  %s
--repo keeps one repository's countme rows (the per-region figures are not per
repository). --json prints what GET /api/v1/stats answers for the same window.`,
			statsBucketHeaders[0], model.CountmeBuckets[0], statsBucketHeaders[1], model.CountmeBuckets[1],
			statsBucketHeaders[2], model.CountmeBuckets[2], statsBucketHeaders[3], model.CountmeBuckets[3]),
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if weeks < 1 || weeks > maxStatsWeeks {
				return usagef("stats: --weeks %d: must be 1 to %d", weeks, maxStatsWeeks)
			}
			if repo != "" {
				if err := model.ValidateRepoName(repo); err != nil {
					return usagef("stats: --repo: %v", err)
				}
			}
			ctx := cmd.Context()
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			from, to := model.UsageWindow(time.Now(), weeks)
			u, err := d.Usage(ctx, from, to, repo)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, u)
			}
			return printStats(a, u)
		}),
	}
	cmd.Flags().StringVar(&repo, "repo", "", "only this repository's countme rows")
	cmd.Flags().IntVar(&weeks, "weeks", model.DefaultUsageWeeks, fmt.Sprintf("weeks to show, this one included (1 to %d)", maxStatsWeeks))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStats(a *app, u model.UsageStats) error {
	fmt.Fprintf(a.stdout, "%s to %s\n\n", u.From.Format(time.DateOnly), u.To.Format("2006-01-02 15:04 MST"))
	if len(u.Countme) == 0 {
		fmt.Fprintln(a.stdout, "no countme requests")
	} else {
		header := append([]string{"WEEK", "REPO", "ARCH"}, statsBucketHeaders[:]...)
		rows := [][]string{}
		for _, w := range u.Countme {
			row := []string{w.Week, w.Repo, w.Arch}
			for _, n := range w.Buckets {
				row = append(row, strconv.FormatInt(n, 10))
			}
			rows = append(rows, append(row, strconv.FormatInt(w.Total, 10)))
		}
		if err := printTable(a.stdout, append(header, "TOTAL"), rows); err != nil {
			return err
		}
	}
	fmt.Fprintln(a.stdout)
	regions := statsByRegion(u.Hourly)
	if len(regions) == 0 {
		fmt.Fprintln(a.stdout, "no redirected requests")
		return nil
	}
	rows := [][]string{}
	for _, r := range regions {
		rows = append(rows, []string{r.Region, strconv.FormatInt(r.Requests, 10), human.Bytes(r.Bytes)})
	}
	return printTable(a.stdout, []string{"REGION", "REQUESTS", "BYTES"}, rows)
}

// statsByRegion sums the hours per region, by name with the origin ("" in the data,
// "origin" here) last.
func statsByRegion(hours []model.UsageHour) []model.UsageHour {
	by := map[string]*model.UsageHour{}
	var out []model.UsageHour
	for _, h := range hours {
		s := by[h.Region]
		if s == nil {
			s = &model.UsageHour{Region: h.Region}
			by[h.Region] = s
		}
		s.Requests += h.Requests
		s.Bytes += h.Bytes
	}
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Region == "") != (out[j].Region == "") {
			return out[j].Region == ""
		}
		return out[i].Region < out[j].Region
	})
	for i := range out {
		if out[i].Region == "" {
			out[i].Region = "origin"
		}
	}
	return out
}
