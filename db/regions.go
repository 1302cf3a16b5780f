package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/regionmirror/regionmirror/internal/model"
)

const regionColumns = `id, name, kind, bucket, dir, endpoint, s3_region, prefix, public_url,
	country, continent, latitude, longitude, aliases, netblocks, includes, weight, access,
	credentials, concurrency, fill, pins, max_bytes, enabled, created_at, updated_at`

func scanRegion(row pgx.Row) (*model.Region, error) {
	var r model.Region
	err := row.Scan(&r.ID, &r.Name, &r.Kind, &r.Bucket, &r.Dir, &r.Endpoint, &r.S3Region, &r.Prefix,
		&r.PublicURL, &r.Country, &r.Continent, &r.Latitude, &r.Longitude, &r.Aliases, &r.Netblocks,
		&r.Includes, &r.Weight, &r.Access, &r.Credentials, &r.Concurrency, &r.Fill, &r.Pins, &r.MaxBytes, &r.Enabled, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if r.Netblocks == nil {
		r.Netblocks = []netip.Prefix{}
	}
	return &r, nil
}

// fillOf is the region's fill mode as stored: push unless it says on-demand.
func fillOf(r *model.Region) string {
	if r.Fill == "" {
		return model.FillPush
	}
	return r.Fill
}

func pinsOf(r *model.Region) []string {
	if r.Pins == nil {
		return []string{}
	}
	return r.Pins
}

// checkNamesFree fails with ErrExists when the region's name or an alias is already a
// name or alias of another region: a location= must name exactly one region.
func checkNamesFree(ctx context.Context, tx pgx.Tx, r *model.Region) error {
	names := append([]string{r.Name}, r.Aliases...)
	var other string
	err := tx.QueryRow(ctx, `
		SELECT name FROM regions
		WHERE id <> $1 AND (name = ANY($2) OR aliases && $2)
		ORDER BY name LIMIT 1`, r.ID, names).Scan(&other)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if other == r.Name {
		return fmt.Errorf("region %q: %w", r.Name, ErrExists)
	}
	return fmt.Errorf("region %q: name or alias already used by region %q: %w", r.Name, other, ErrExists)
}

// CreateRegion inserts a validated region and sets its ID and timestamps.
func (d *DB) CreateRegion(ctx context.Context, r *model.Region) error {
	return d.Transact(ctx, func(tx pgx.Tx) error {
		r.ID = 0
		if err := checkNamesFree(ctx, tx, r); err != nil {
			return err
		}
		row := tx.QueryRow(ctx, `
			INSERT INTO regions (name, kind, bucket, dir, endpoint, s3_region, prefix, public_url,
				country, continent, latitude, longitude, aliases, netblocks, includes, weight, access,
				credentials, concurrency, enabled, fill, pins, max_bytes)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
				$21, $22, $23)
			RETURNING id, created_at, updated_at`,
			r.Name, r.Kind, r.Bucket, r.Dir, r.Endpoint, r.S3Region, r.Prefix, r.PublicURL,
			r.Country, r.Continent, r.Latitude, r.Longitude, r.Aliases, r.Netblocks, r.Includes,
			r.Weight, r.Access, r.Credentials, r.Concurrency, r.Enabled, fillOf(r), pinsOf(r), r.MaxBytes)
		if err := row.Scan(&r.ID, &r.CreatedAt, &r.UpdatedAt); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("region %q: %w", r.Name, ErrExists)
			}
			return fmt.Errorf("create region %s: %w", r.Name, err)
		}
		return notify(ctx, tx, "regions")
	})
}

// GetRegion returns the region with that name.
func (d *DB) GetRegion(ctx context.Context, name string) (*model.Region, error) {
	r, err := scanRegion(d.pool.QueryRow(ctx, "SELECT "+regionColumns+" FROM regions WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("region %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get region %s: %w", name, err)
	}
	return r, nil
}

// ListRegions returns every region, ordered by name.
func (d *DB) ListRegions(ctx context.Context) ([]model.Region, error) {
	rows, err := d.pool.Query(ctx, "SELECT "+regionColumns+" FROM regions ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	defer rows.Close()
	out := []model.Region{}
	for rows.Next() {
		r, err := scanRegion(rows)
		if err != nil {
			return nil, fmt.Errorf("list regions: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	return out, nil
}

// RegionMove is what an edit of a region's location forgot.
type RegionMove struct {
	Moved        bool // the bucket, directory, endpoint, prefix or public URL changed
	Copies       int  // copies recorded there, forgotten
	Repositories int  // repository states recorded there, forgotten
}

// Moved reports whether a region edit changes where its copy is: its storage, or the URL
// clients fetch it from. What was verified at the old place says nothing about the new.
func Moved(before, after *model.Region) bool {
	return before.Bucket != after.Bucket || before.Dir != after.Dir || before.Endpoint != after.Endpoint ||
		before.Prefix != after.Prefix || before.PublicURL != after.PublicURL
}

// UpdateRegion reads the region, lets edit change it, and writes it back in one
// transaction. edit must validate what it changes; an error from it writes nothing.
// Name, kind, ID and timestamps are not changed by an update. An edit that moves the
// region forgets, in the same transaction, every copy and repository state recorded
// there, and bumps the generation of its write lock, so that a push or gc still running
// against the old place can record nothing: until a push or scan verifies the new place,
// no client is sent there.
func (d *DB) UpdateRegion(ctx context.Context, name string, edit func(*model.Region) error) (*model.Region, RegionMove, error) {
	var out *model.Region
	var move RegionMove
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		move = RegionMove{}
		r, err := scanRegion(tx.QueryRow(ctx, "SELECT "+regionColumns+" FROM regions WHERE name = $1 FOR UPDATE", name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("region %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("get region %s: %w", name, err)
		}
		id, kind, created := r.ID, r.Kind, r.CreatedAt
		before := *r
		if err := edit(r); err != nil {
			return err
		}
		r.ID, r.Name, r.Kind, r.CreatedAt = id, name, kind, created
		if err := checkNamesFree(ctx, tx, r); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `
			UPDATE regions SET bucket = $2, dir = $3, endpoint = $4, s3_region = $5, prefix = $6,
				public_url = $7, country = $8, continent = $9, latitude = $10, longitude = $11,
				aliases = $12, netblocks = $13, includes = $14, weight = $15, access = $16,
				credentials = $17, concurrency = $18, enabled = $19, fill = $20, pins = $21,
				max_bytes = $22, updated_at = now()
			WHERE id = $1 RETURNING updated_at`,
			r.ID, r.Bucket, r.Dir, r.Endpoint, r.S3Region, r.Prefix, r.PublicURL, r.Country,
			r.Continent, r.Latitude, r.Longitude, r.Aliases, r.Netblocks, r.Includes, r.Weight,
			r.Access, r.Credentials, r.Concurrency, r.Enabled, fillOf(r), pinsOf(r), r.MaxBytes).Scan(&r.UpdatedAt)
		if err != nil {
			return fmt.Errorf("update region %s: %w", name, err)
		}
		if Moved(&before, r) {
			if move, err = forgetRegionCopy(ctx, tx, r); err != nil {
				return fmt.Errorf("update region %s: %w", name, err)
			}
		} else if !r.OnDemand() {
			// A region that no longer fills on demand has no copies to make; their
			// workers are fenced off by the jobs' removal.
			if _, err := tx.Exec(ctx, "DELETE FROM fill_jobs WHERE region_id = $1", r.ID); err != nil {
				return fmt.Errorf("update region %s: %w", name, err)
			}
		}
		out = r
		return notify(ctx, tx, "regions")
	})
	return out, move, err
}

// forgetRegionCopy forgets everything verified in a region and fences off its write
// lock's holder (a generation bump waits for that holder's fenced writes in flight).
func forgetRegionCopy(ctx context.Context, tx pgx.Tx, r *model.Region) (RegionMove, error) {
	move := RegionMove{Moved: true}
	tag, err := tx.Exec(ctx, "DELETE FROM region_objects WHERE region_id = $1", r.ID)
	if err != nil {
		return move, err
	}
	move.Copies = int(tag.RowsAffected())
	if tag, err = tx.Exec(ctx, "DELETE FROM region_repos WHERE region_id = $1", r.ID); err != nil {
		return move, err
	}
	move.Repositories = int(tag.RowsAffected())
	// Pushes to the new place wait for the servers to read the move (RegionMoveWait).
	if _, err := tx.Exec(ctx, "UPDATE regions SET moved_at = clock_timestamp() WHERE id = $1", r.ID); err != nil {
		return move, err
	}
	// Copies in flight were for the old place: their workers can record nothing now.
	if _, err := tx.Exec(ctx, "DELETE FROM fill_jobs WHERE region_id = $1", r.ID); err != nil {
		return move, err
	}
	if _, err := tx.Exec(ctx, "UPDATE lock_generations SET generation = generation + 1 WHERE name = $1", WriteLock(r.Name)); err != nil {
		return move, err
	}
	if err := notify(ctx, tx, "objects"); err != nil {
		return move, err
	}
	return move, notify(ctx, tx, "region_repos")
}

// DeleteRegion removes a region and everything recorded about its copy; its runs stay,
// under its name.
func (d *DB) DeleteRegion(ctx context.Context, name string) error {
	return d.Transact(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM regions WHERE name = $1", name)
		if err != nil {
			return fmt.Errorf("delete region %s: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("region %q: %w", name, ErrNotFound)
		}
		return notify(ctx, tx, "regions")
	})
}

// ResolveRegions returns the named regions, or every region when none is named. An
// unknown name fails before anything is done.
func (d *DB) ResolveRegions(ctx context.Context, names []string) ([]*model.Region, error) {
	if len(names) == 0 {
		all, err := d.ListRegions(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]*model.Region, len(all))
		for i := range all {
			out[i] = &all[i]
		}
		return out, nil
	}
	var out []*model.Region
	for _, n := range names {
		if slices.ContainsFunc(out, func(r *model.Region) bool { return r.Name == n }) {
			continue
		}
		r, err := d.GetRegion(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
