package db

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// AddUsage adds one server's deltas (redirect totals, hourly figures, countme requests)
// in one transaction: on failure nothing is added, and the caller keeps them to try again.
func (d *DB) AddUsage(ctx context.Context, delta model.UsageDelta) error {
	if delta.Empty() {
		return nil
	}
	// Rows in key order: servers flushing the same rows at once (each hour's start) then
	// lock them in the same order, and cannot deadlock.
	delta.Totals = slices.SortedFunc(slices.Values(delta.Totals), func(x, y model.RedirectCount) int { return cmp.Compare(x.Region, y.Region) })
	delta.Hours = slices.SortedFunc(slices.Values(delta.Hours), func(x, y model.HourCount) int {
		return cmp.Or(x.Hour.Compare(y.Hour), cmp.Compare(x.Region, y.Region))
	})
	delta.Countme = slices.SortedFunc(slices.Values(delta.Countme), func(x, y model.CountmeCount) int {
		return cmp.Or(cmp.Compare(x.Repo, y.Repo), cmp.Compare(x.Arch, y.Arch), x.Week.Compare(y.Week), cmp.Compare(x.Bucket, y.Bucket))
	})
	err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if n := len(delta.Totals); n > 0 {
			names, reqs, bytes, misses := make([]string, n), make([]int64, n), make([]int64, n), make([]int64, n)
			for i, c := range delta.Totals {
				names[i], reqs[i], bytes[i], misses[i] = c.Region, c.Requests, c.Bytes, c.Misses
			}
			if _, err := tx.Exec(ctx, `INSERT INTO redirect_counters AS c (region, requests, bytes, misses)
				SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
				ON CONFLICT (region) DO UPDATE SET requests = c.requests + excluded.requests,
					bytes = c.bytes + excluded.bytes, misses = c.misses + excluded.misses, updated_at = now()`,
				names, reqs, bytes, misses); err != nil {
				return fmt.Errorf("redirect totals: %w", err)
			}
		}
		if n := len(delta.Hours); n > 0 {
			hours, names, reqs, bytes := make([]time.Time, n), make([]string, n), make([]int64, n), make([]int64, n)
			for i, h := range delta.Hours {
				hours[i], names[i], reqs[i], bytes[i] = h.Hour.UTC().Truncate(time.Hour), h.Region, h.Requests, h.Bytes
			}
			if _, err := tx.Exec(ctx, `INSERT INTO redirect_hourly AS h (hour, region, requests, bytes)
				SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bigint[], $4::bigint[])
				ON CONFLICT (hour, region) DO UPDATE SET requests = h.requests + excluded.requests,
					bytes = h.bytes + excluded.bytes`, hours, names, reqs, bytes); err != nil {
				return fmt.Errorf("hourly redirects: %w", err)
			}
		}
		if n := len(delta.Countme); n > 0 {
			repos, arches, weeks, buckets, hits := make([]string, n), make([]string, n), make([]string, n), make([]int16, n), make([]int64, n)
			for i, c := range delta.Countme {
				repos[i], arches[i], buckets[i], hits[i] = c.Repo, c.Arch, int16(c.Bucket), c.Hits
				weeks[i] = model.WeekStart(c.Week).Format(time.DateOnly)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO countme_weekly AS c (repo, arch, week, bucket, hits)
				SELECT r, a, w::date, b, n FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[]) AS u(r, a, w, b, n)
				ON CONFLICT (repo, arch, week, bucket) DO UPDATE SET hits = c.hits + excluded.hits`,
				repos, arches, weeks, buckets, hits); err != nil {
				return fmt.Errorf("countme: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add usage: %w", err)
	}
	return nil
}

// Usage returns the usage figures of [from, to): the countme weeks that overlap it and
// the hours in it; repo "" means every repository (hours are not per repository).
func (d *DB) Usage(ctx context.Context, from, to time.Time, repo string) (model.UsageStats, error) {
	return d.UsageSince(ctx, from, from, to, repo)
}

// UsageSince is Usage with the hours read from hoursFrom (after from: fewer of them).
func (d *DB) UsageSince(ctx context.Context, from, hoursFrom, to time.Time, repo string) (model.UsageStats, error) {
	if hoursFrom.Before(from) {
		hoursFrom = from
	}
	if hoursFrom.After(to) {
		hoursFrom = to
	}
	out := model.UsageStats{From: from.UTC(), To: to.UTC(), HourlyFrom: hoursFrom.UTC(), Countme: []model.UsageWeek{}, Hourly: []model.UsageHour{}}
	// A week overlaps the window when it starts before to and ends after from.
	rows, err := d.pool.Query(ctx, `
		SELECT repo, arch, week, array_agg(hits ORDER BY bucket), array_agg(bucket ORDER BY bucket)
		FROM countme_weekly
		WHERE week < $2::timestamptz AT TIME ZONE 'UTC' AND week + 7 > $1::timestamptz AT TIME ZONE 'UTC'
			AND ($3 = '' OR repo = $3)
		GROUP BY repo, arch, week ORDER BY week, repo, arch`, from, to, repo)
	if err != nil {
		return out, fmt.Errorf("usage: countme: %w", err)
	}
	weeks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.UsageWeek, error) {
		var (
			name, arch string
			start      time.Time // a date: midnight UTC, whatever the session's DateStyle
			hits       []int64
			buckets    []int16
		)
		if err := r.Scan(&name, &arch, &start, &hits, &buckets); err != nil {
			return model.UsageWeek{}, err
		}
		var by [4]int64
		for i, b := range buckets {
			by[b-1] = hits[i]
		}
		return model.UsageWeekOf(name, arch, start, by), nil
	})
	if err != nil {
		return out, fmt.Errorf("usage: countme: %w", err)
	}
	out.Countme = append(out.Countme, weeks...)
	rows, err = d.pool.Query(ctx, `SELECT hour, region, requests, bytes FROM redirect_hourly
		WHERE hour >= $1 AND hour < $2 ORDER BY hour, region`, hoursFrom, to)
	if err != nil {
		return out, fmt.Errorf("usage: hourly: %w", err)
	}
	hours, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.UsageHour, error) {
		var h model.UsageHour
		err := r.Scan(&h.Hour, &h.Region, &h.Requests, &h.Bytes)
		h.Hour = h.Hour.UTC()
		return h, err
	})
	if err != nil {
		return out, fmt.Errorf("usage: hourly: %w", err)
	}
	out.Hourly = append(out.Hourly, hours...)
	return out, nil
}
