package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/regionmirror/regionmirror/internal/model"
)

// SetRegionRepo records what a region was just verified to serve (verified_at = now), if
// fence still holds.
func (d *DB) SetRegionRepo(ctx context.Context, fence Fence, rr model.RegionRepo) error {
	err := d.Transact(ctx, func(tx pgx.Tx) error {
		if err := fence.check(ctx, tx); err != nil {
			return err
		}
		var status *int
		if rr.HTTPStatus != 0 {
			status = &rr.HTTPStatus
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO region_repos (region_id, repository_id, repomd_sha256, state, http_status, error, verified_at)
			VALUES ($1, $2, $3, $4, $5, $6, now())
			ON CONFLICT (region_id, repository_id) DO UPDATE SET repomd_sha256 = excluded.repomd_sha256,
				state = excluded.state, http_status = excluded.http_status, error = excluded.error,
				verified_at = excluded.verified_at`,
			rr.RegionID, rr.RepositoryID, rr.RepomdSHA256, rr.State, status, rr.Error); err != nil {
			return err
		}
		// A repository found stale, missing or unreachable is work for the next push,
		// which reads it back again: the region is no longer synced.
		if rr.State != model.RepoFresh && rr.State != model.RepoAlternate {
			if err := invalidateRegions(ctx, tx, []int64{rr.RegionID}); err != nil {
				return err
			}
		}
		// The first time the region serves a version verified is its publication there.
		if rr.State == model.RepoFresh && rr.RepomdSHA256 != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO publications (repomd_version_id, region_id)
				SELECT v.id, $1 FROM repomd_versions v WHERE v.repository_id = $2 AND v.sha256 = $3
				ON CONFLICT DO NOTHING`, rr.RegionID, rr.RepositoryID, rr.RepomdSHA256); err != nil {
				return err
			}
		}
		return notify(ctx, tx, "region_repos")
	})
	if err != nil {
		return fmt.Errorf("record repository %d in region %d: %w", rr.RepositoryID, rr.RegionID, err)
	}
	return nil
}

// RegionRepos returns every region/repository record.
func (d *DB) RegionRepos(ctx context.Context) ([]model.RegionRepo, error) {
	rows, err := d.pool.Query(ctx, `SELECT region_id, repository_id, repomd_sha256, state, coalesce(http_status, 0), error, verified_at
		FROM region_repos ORDER BY region_id, repository_id`)
	if err != nil {
		return nil, fmt.Errorf("region repos: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (model.RegionRepo, error) {
		var rr model.RegionRepo
		err := r.Scan(&rr.RegionID, &rr.RepositoryID, &rr.RepomdSHA256, &rr.State, &rr.HTTPStatus, &rr.Error, &rr.VerifiedAt)
		return rr, err
	})
	if err != nil {
		return nil, fmt.Errorf("region repos: %w", err)
	}
	return out, nil
}
